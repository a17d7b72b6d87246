import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findExecutable, freePort, killOnExit, onExit, sleep } from './proc.js'

export const NGINX_INSTALL_HINT = 'apt-get install -y nginx wrk'

/** nginx's version line, or undefined when it is not installed. */
export function nginxVersion (): string | undefined {
  const bin = findExecutable('nginx')
  if (bin === undefined) return undefined
  const out = spawnSync(bin, ['-v'], { encoding: 'utf8' })
  return (out.stderr + out.stdout).trim().replace(/^nginx version:\s*/, '') || 'nginx'
}

/**
 * A private nginx (never the system one): one worker, its own prefix directory with config,
 * pid, logs and temp paths under the OS temp dir, `proxy_pass` with upstream keepalive for
 * HTTP under /api/ and WebSocket under /wsecho/, both to `upstreamPort`.
 */
export class Nginx {
  private readonly forget: () => void

  private constructor (readonly port: number, readonly dir: string, private readonly proc: ChildProcess) {
    const kill = killOnExit(proc.pid)
    const clean = onExit(() => rmSync(dir, { recursive: true, force: true }))
    this.forget = () => { kill(); clean() }
  }

  get pid (): number {
    return this.proc.pid as number
  }

  static async start (upstreamPort: number): Promise<Nginx> {
    const bin = findExecutable('nginx')
    if (bin === undefined) throw new Error(`nginx is not installed (${NGINX_INSTALL_HINT})`)
    const dir = mkdtempSync(join(tmpdir(), 'gateway-bench-nginx-'))
    // Workers run as nobody when started by root: they must reach the prefix.
    chmodSync(dir, 0o755)
    const port = await freePort()
    const conf = join(dir, 'nginx.conf')
    writeFileSync(conf, nginxConf(dir, port, upstreamPort))
    const test = spawnSync(bin, ['-t', '-q', '-p', dir, '-c', conf], { encoding: 'utf8' })
    if (test.status !== 0) throw new Error(`nginx -t failed: ${test.stderr.trim()}`)
    const proc = spawn(bin, ['-p', dir, '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] })
    const nginx = new Nginx(port, dir, proc)
    const deadline = Date.now() + 10_000
    while (!(await accepts(port))) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        await nginx.stop()
        throw new Error(`nginx did not start: ${readLog(dir)}`)
      }
      await sleep(50)
    }
    return nginx
  }

  async stop (): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise(resolve => this.proc.once('exit', resolve))
      this.proc.kill('SIGQUIT')
      const timer = setTimeout(() => { this.proc.kill('SIGKILL') }, 5_000)
      await exited
      clearTimeout(timer)
    }
    this.forget()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

function readLog (dir: string): string {
  try {
    return readFileSync(join(dir, 'error.log'), 'utf8').trim().split('\n').slice(-3).join(' | ')
  } catch {
    return 'no error log'
  }
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

function nginxConf (dir: string, port: number, upstreamPort: number): string {
  return `# written by bench/lib/nginx.ts
worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 75s;
  keepalive_requests 10000000;
  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port};
    # The same work the gateway does: forwarded headers and a request id both ways.
    location /api/ {
      proxy_pass http://backend/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Request-Id $request_id;
      add_header X-Request-Id $request_id always;
    }
    location /wsecho/ {
      proxy_pass http://backend/;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
`
}
