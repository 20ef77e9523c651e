#!/usr/bin/env bash
# Fetches the single-node Apache Kafka broker used by the tests and the benchmark (see pom.xml beside this
# script) into .kafka/lib of the project. The jars are cached in the user's Maven repository (~/.m2), so a
# second install, or another clone, downloads nothing. Needs Java 17+ and Maven on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lib="${KEYFENCE_KAFKA_LIB:-$root/.kafka/lib}"

command -v java >/dev/null || { echo "install.sh: java not found on PATH (Kafka needs Java 17+)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "install.sh: mvn not found on PATH (it fetches the Kafka jars from Maven Central)" >&2; exit 1; }

installed() { [ -f "$lib/.complete" ] && [ "$lib/.complete" -nt "$here/pom.xml" ]; }
installed && exit 0
# Test files start brokers in parallel: one install at a time, the others wait for it and reuse it.
mkdir -p "$(dirname "$lib")"
if command -v flock >/dev/null; then
  exec 9>"$(dirname "$lib")/.install.lock"
  flock 9
  installed && exit 0
fi
# Copy into a fresh directory, then swap it in: a half-finished copy never looks like an installed broker.
tmp="$lib.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp"
ls "$tmp"/kafka_2.13-*.jar >/dev/null
touch "$tmp/.complete"
rm -rf "$lib"
mv "$tmp" "$lib"
trap - EXIT
echo "Kafka jars in $lib"
