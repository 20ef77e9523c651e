// The CLI compiled ahead of its run. esbuild (the one tsx ships with) bundles bin/cli.ts, its lazily imported
// command handlers as chunks of their own, into node_modules/.cache/keyfence/; later runs import that bundle
// instead of starting tsx and transforming every TypeScript file again (about 0.3–0.5 s of each start-up).
// A bundle is used only while every file it was built from has the size and mtime it had then; otherwise the
// next run rebuilds it (about 0.1–0.3 s, once). Whatever prevents building or loading it (no esbuild, a cache
// that cannot be written, a source that does not compile) makes compiledCli() return null, and the caller
// runs the sources through tsx as before, which also reports a compile error the way it always did.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ENTRY = 'bin/cli.ts';
/**
 * Packages every command loads, compiled into the bundle: Node loading @duckdb/node-api's 120-odd CommonJS files
 * one by one cost about as much as the rest of start-up. Every other package stays external, loaded by Node
 * as usual and only by the command that needs it (kafkajs, the SLS SDK, zod…), as does the native binding.
 */
const INLINED_PACKAGES = ['@duckdb/node-api', 'commander', 'ipaddr.js'];
/** Inlined CommonJS code requires the packages left external (the native DuckDB binding) through this. */
const REQUIRE_BANNER = "import { createRequire as keyfenceCreateRequire } from 'node:module'; const require = keyfenceCreateRequire(import.meta.url);";
/** Files that shape the output without being bundled: the compiler settings and this builder. */
const ALSO_TRACKED = ['tsconfig.json', 'bin/bundle.js'];
/**
 * A build no manifest points at is deleted once it has not been started from for this long: a long run (nightly)
 * may still import lazy chunks from the build it started from.
 */
const UNUSED_BUILD_MS = 3600 * 1000;
/** Set to 1 to run the TypeScript sources through tsx, bypassing the bundle. */
export const NO_BUNDLE_ENV = 'KEYFENCE_NO_BUNDLE';

/** The CLI's `main` from an up-to-date bundle (built first when missing or stale), or null: run the sources. */
export async function compiledCli(root) {
  if (process.env[NO_BUNDLE_ENV] === '1') return null;
  let url;
  try {
    url = freshBundle(root) ?? (await buildBundle(root));
  } catch {
    return null;
  }
  markUsed(url);
  // Stack traces name the TypeScript files and lines, as under tsx.
  process.setSourceMapsEnabled(true);
  try {
    return (await import(url)).main;
  } catch {
    return null;
  }
}

/** A build's directory mtime is when a run last started from it (see removeOldBuilds). */
function markUsed(url) {
  const now = new Date();
  try {
    utimesSync(dirname(fileURLToPath(url)), now, now);
  } catch {
    // a read-only cache still runs; its builds are just not cleaned up by age
  }
}

export function cacheDir(root) {
  return join(root, 'node_modules', '.cache', 'keyfence');
}

/** One manifest per checkout: two checkouts sharing one node_modules (a worktree) keep their own bundles. */
function manifestPath(root) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < root.length; i++) hash = Math.imul(hash ^ root.charCodeAt(i), 0x01000193) >>> 0;
  return join(cacheDir(root), `manifest-${hash.toString(16).padStart(8, '0')}.json`);
}

/** The URL of the bundle's entry when every file it was built from is unchanged, else null. */
export function freshBundle(root) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath(root), 'utf8'));
  } catch {
    return null;
  }
  if (manifest.root !== root || typeof manifest.build !== 'string' || !manifest.inputs) return null;
  for (const [file, [mtimeMs, size]] of Object.entries(manifest.inputs)) {
    let stat;
    try {
      stat = statSync(join(root, file));
    } catch {
      return null;
    }
    if (stat.mtimeMs !== mtimeMs || stat.size !== size) return null;
  }
  return pathToFileURL(join(cacheDir(root), manifest.build, 'cli.mjs')).href;
}

/** Builds a bundle into a directory of its own, then points this checkout's manifest at it (atomically). */
export async function buildBundle(root) {
  const dir = cacheDir(root);
  mkdirSync(dir, { recursive: true });
  const esbuild = loadEsbuild(root);
  const build = `build-${Date.now().toString(36)}-${process.pid}`;
  const startedMs = Date.now();
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [ENTRY],
    outdir: join(dir, build),
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    banner: { js: REQUIRE_BANNER },
    sourcemap: 'linked',
    sourcesContent: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [externalPackages(), sourceLocations()],
  });
  const inputs = {};
  for (const file of trackedFiles(Object.keys(result.metafile.inputs))) {
    const stat = statSync(join(root, file));
    // Changed while the build ran: the bundle may hold the older text, so the next run builds again.
    inputs[file] = [stat.mtimeMs >= startedMs - 1 ? -1 : stat.mtimeMs, stat.size];
  }
  const manifest = manifestPath(root);
  const temporary = `${manifest}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify({ root, build, builtAt: new Date(startedMs).toISOString(), inputs }));
  renameSync(temporary, manifest);
  removeOldBuilds(dir);
  return pathToFileURL(join(dir, build, 'cli.mjs')).href;
}

/** The files whose change makes a bundle stale: its own sources, and for an inlined package its package.json. */
function trackedFiles(inputs) {
  const files = new Set(ALSO_TRACKED);
  for (const file of inputs) {
    const at = file.lastIndexOf('node_modules/');
    if (at < 0) {
      files.add(file);
      continue;
    }
    const [first, second] = file.slice(at + 'node_modules/'.length).split('/');
    files.add(`${file.slice(0, at)}node_modules/${first.startsWith('@') ? `${first}/${second}` : first}/package.json`);
  }
  return [...files].sort();
}

/** esbuild as installed for tsx (hoisted next to it, or inside tsx's own node_modules). */
function loadEsbuild(root) {
  const fromRoot = createRequire(join(root, 'package.json'));
  try {
    return fromRoot('esbuild');
  } catch {
    return createRequire(fromRoot.resolve('tsx'))('esbuild');
  }
}

/** Bare imports stay external unless they name one of INLINED_PACKAGES (or a file inside one). */
function externalPackages() {
  const inlined = (path) => INLINED_PACKAGES.some((name) => path === name || path.startsWith(`${name}/`));
  return {
    name: 'keyfence-external-packages',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => (inlined(args.path) ? undefined : { path: args.path, external: true }));
    },
  };
}

/**
 * `import.meta.url` (and `.filename`, `.dirname`) in a source file becomes that file's own location, so code
 * that finds files beside itself (the report's page script, the CLI path the demo runs) works from the bundle.
 */
function sourceLocations() {
  return {
    name: 'keyfence-source-locations',
    setup(build) {
      build.onLoad({ filter: /\.[cm]?ts$/ }, (args) => {
        if (args.path.includes(`${sep}node_modules${sep}`)) return undefined;
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes('import.meta.')) return undefined;
        const located = text.replace(/\bimport\.meta\.(url|filename|dirname)\b/g, (_, part) =>
          JSON.stringify(part === 'url' ? pathToFileURL(args.path).href : part === 'filename' ? args.path : dirname(args.path)));
        return { contents: located, loader: 'ts' };
      });
    },
  };
}

function removeOldBuilds(dir) {
  const current = new Set();
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('manifest-') || !name.endsWith('.json')) continue;
    try {
      current.add(JSON.parse(readFileSync(join(dir, name), 'utf8')).build);
    } catch {
      // a manifest being replaced: its builds are young and stay anyway
    }
  }
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('build-') || current.has(name)) continue;
    try {
      if (Date.now() - statSync(join(dir, name)).mtimeMs > UNUSED_BUILD_MS) rmSync(join(dir, name), { recursive: true, force: true });
    } catch {
      // removed by another process meanwhile
    }
  }
}
