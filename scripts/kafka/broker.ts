// A real single-node Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1, for the tests and
// the benchmark: free ports, a temporary data directory, the JVM from PATH, stopped and removed afterwards.
// The jars come from scripts/kafka/install.sh (Maven Central, cached in ~/.m2); they are installed on first use.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** SASL users the broker accepts on its SASL_PLAINTEXT listener (PLAIN and both SCRAM mechanisms). */
export const TEST_SASL_USER = { username: 'keyfence', password: 'kf-test-secret' } as const;

export interface KafkaBroker {
  /** `127.0.0.1:port` of the PLAINTEXT listener. */
  brokers: string;
  /** `127.0.0.1:port` of the SASL_PLAINTEXT listener (users: TEST_SASL_USER). */
  saslBrokers: string;
  /** `127.0.0.1:port` of the SSL listener, whose self-signed certificate (for 127.0.0.1) is in `caFile`. */
  sslBrokers: string;
  /** PEM file to trust for the SSL listener (e.g. NODE_EXTRA_CA_CERTS). */
  caFile: string;
  dataDir: string;
  /** The last lines the broker printed (WARN and above), for error messages. */
  logTail(): string;
  /** Stops the JVM (SIGTERM, then SIGKILL after a grace period) and removes the data directory. */
  stop(): Promise<void>;
}

export interface StartBrokerOptions {
  /** Where install.sh puts the jars; default `<project>/.kafka/lib` (or KEYFENCE_KAFKA_LIB). */
  libDir?: string;
  heapMiB?: number;
  startTimeoutMs?: number;
  log?: (message: string) => void;
}

export function defaultKafkaLibDir(): string {
  return process.env.KEYFENCE_KAFKA_LIB ?? join(PROJECT_ROOT, '.kafka', 'lib');
}

/**
 * Installs the broker jars when missing or older than pom.xml (first run on a fresh clone: Maven downloads them
 * once); install.sh returns at once when they are in place, and lets parallel callers wait for one install.
 */
export function ensureKafkaJars(libDir = defaultKafkaLibDir(), log: (m: string) => void = () => undefined): string {
  if (!existsSync(join(libDir, '.complete'))) log(`installing the Kafka broker jars into ${libDir} (scripts/kafka/install.sh)`);
  const result = spawnSync(join(PROJECT_ROOT, 'scripts', 'kafka', 'install.sh'), [], {
    env: { ...process.env, KEYFENCE_KAFKA_LIB: libDir },
    encoding: 'utf8',
    timeout: 15 * 60_000,
  });
  if (result.status !== 0 || !existsSync(join(libDir, '.complete'))) {
    throw new Error(`scripts/kafka/install.sh failed (exit ${result.status ?? result.signal}): ${(result.stderr || result.stdout || String(result.error ?? '')).trim().slice(-2000)}`);
  }
  return libDir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

interface Ports {
  plain: number;
  sasl: number;
  ssl: number;
  controller: number;
}

function serverProperties(dataDir: string, ports: Ports, keystore: { path: string; password: string }): string {
  const { username, password } = TEST_SASL_USER;
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${ports.controller}`,
    `listeners=PLAINTEXT://127.0.0.1:${ports.plain},SASL_PLAINTEXT://127.0.0.1:${ports.sasl},SSL://127.0.0.1:${ports.ssl},CONTROLLER://127.0.0.1:${ports.controller}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${ports.plain},SASL_PLAINTEXT://127.0.0.1:${ports.sasl},SSL://127.0.0.1:${ports.ssl}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL',
    `log.dirs=${join(dataDir, 'data')}`,
    'auto.create.topics.enable=false',
    'num.partitions=1',
    // A single node: every internal topic with one replica, few partitions (fast first group join).
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=4',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=4',
    'group.initial.rebalance.delay.ms=0',
    'group.min.session.timeout.ms=1000',
    // 2 shared cores: few threads.
    'num.network.threads=2',
    'num.io.threads=2',
    'background.threads=2',
    'log.cleaner.enable=false',
    'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
    `listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${username}="${password}";`,
    'listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
    'listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
    `ssl.keystore.location=${keystore.path}`,
    'ssl.keystore.type=PKCS12',
    `ssl.keystore.password=${keystore.password}`,
    `ssl.key.password=${keystore.password}`,
    '',
  ].join('\n');
}

const LOG4J = [
  'log4j.rootLogger=WARN, stdout',
  'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
  'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
  'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
  // The one INFO line that says the broker is up.
  'log4j.logger.kafka.server.KafkaRaftServer=INFO',
  '',
].join('\n');

function java(libDir: string, heapMiB: number, log4jPath: string, args: string[]): string[] {
  return [`-Xmx${heapMiB}m`, `-Xms${Math.min(heapMiB, 256)}m`, '-XX:+UseG1GC', '-Djava.awt.headless=true', `-Dlog4j.configuration=file:${log4jPath}`, '-cp', `${libDir}/*`, ...args];
}

/** Starts a broker and resolves once it accepts connections and has finished starting. */
export async function startKafkaBroker(options: StartBrokerOptions = {}): Promise<KafkaBroker> {
  const log = options.log ?? (() => undefined);
  const libDir = ensureKafkaJars(options.libDir ?? defaultKafkaLibDir(), log);
  const heapMiB = options.heapMiB ?? 512;
  const dataDir = mkdtempSync(join(tmpdir(), 'kf-kafka-'));
  const ports: Ports = { plain: await freePort(), sasl: await freePort(), ssl: await freePort(), controller: await freePort() };
  const propsPath = join(dataDir, 'server.properties');
  const log4jPath = join(dataDir, 'log4j.properties');
  const keystore = { path: join(dataDir, 'broker.p12'), password: randomBytes(12).toString('hex') };
  const caFile = join(dataDir, 'broker-ca.pem');
  selfSignedKeystore(keystore, caFile);
  writeFileSync(propsPath, serverProperties(dataDir, ports, keystore));
  writeFileSync(log4jPath, LOG4J);

  const tool = (args: string[]): string => {
    const r = spawnSync('java', java(libDir, 256, log4jPath, ['kafka.tools.StorageTool', ...args]), { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`kafka.tools.StorageTool ${args[0]} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error ?? '')).trim().slice(-2000)}`);
    return r.stdout.trim();
  };
  const clusterId = tool(['random-uuid']).split('\n').pop()!.trim();
  const { username, password } = TEST_SASL_USER;
  tool(['format', '-t', clusterId, '-c', propsPath, '--add-scram', `SCRAM-SHA-256=[name=${username},password=${password}]`, '--add-scram', `SCRAM-SHA-512=[name=${username},password=${password}]`]);

  const tail: string[] = [];
  const remember = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) tail.push(line);
    if (tail.length > 200) tail.splice(0, tail.length - 200);
  };
  const child: ChildProcess = spawn('java', java(libDir, heapMiB, log4jPath, ['kafka.Kafka', propsPath]), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', remember);
  child.stderr!.on('data', remember);
  let exited: number | string | null = null;
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
    exited = code ?? signal ?? 'unknown';
    resolve();
  }));

  const stop = async (): Promise<void> => {
    if (exited === null) {
      child.kill('SIGTERM');
      const grace = new Promise<void>((r) => setTimeout(r, 15_000).unref());
      await Promise.race([exitedPromise, grace]);
      if (exited === null) {
        child.kill('SIGKILL');
        await Promise.race([exitedPromise, new Promise<void>((r) => setTimeout(r, 5_000).unref())]);
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 90_000);
  try {
    for (;;) {
      if (exited !== null) throw new Error(`the Kafka broker exited during start (${exited}):\n${tail.slice(-30).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`the Kafka broker did not start in time:\n${tail.slice(-30).join('\n')}`);
      if (tail.some((l) => /Kafka Server started/.test(l)) && (await canConnect(ports.plain))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  log(`Kafka broker up on 127.0.0.1:${ports.plain} (SASL on ${ports.sasl}), data in ${dataDir}`);
  return {
    brokers: `127.0.0.1:${ports.plain}`,
    saslBrokers: `127.0.0.1:${ports.sasl}`,
    sslBrokers: `127.0.0.1:${ports.ssl}`,
    caFile,
    dataDir,
    logTail: () => tail.slice(-50).join('\n'),
    stop,
  };
}

/** A throwaway key pair for 127.0.0.1 (keytool ships with the JDK), and its certificate as PEM. */
function selfSignedKeystore(keystore: { path: string; password: string }, pemPath: string): void {
  const keytool = (args: string[]): void => {
    const r = spawnSync('keytool', args, { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`keytool ${args[0]} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error ?? '')).trim()}`);
  };
  const store = ['-keystore', keystore.path, '-storetype', 'PKCS12', '-storepass', keystore.password];
  keytool(['-genkeypair', '-alias', 'broker', '-keyalg', 'RSA', '-keysize', '2048', '-validity', '2', '-dname', 'CN=127.0.0.1', '-ext', 'SAN=IP:127.0.0.1', '-keypass', keystore.password, ...store]);
  keytool(['-exportcert', '-alias', 'broker', '-rfc', '-file', pemPath, ...store]);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, '127.0.0.1', () => done(true));
  });
}

// `node --import tsx scripts/kafka/broker.ts`: a broker for trying keyfence by hand, until Ctrl-C.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const broker = await startKafkaBroker({ log: (m) => process.stderr.write(`${m}\n`) });
  process.stdout.write(`${broker.brokers}\n`);
  const shutdown = (): void => void broker.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
