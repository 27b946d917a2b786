/**
 * `rha lab up --systemd`: hosts that boot systemd as PID 1 (systemd-nspawn) on the same lab
 * segment as namespace hosts: sshd as a unit, keepalived through its unit moving a real VIP,
 * `rha lab reboot` with the disk kept, replace, and a clean down.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { labDown, labExec, labReboot, labReplace, labAcceptHostKey, labStatus, labUp } from '../../src/lab/index.js';
import { sshBanner } from '../../src/lab/host.js';
import { labDir, labDiskDir } from '../../src/lab/names.js';
import { run } from '../../src/lab/sh.js';
import { sshRun, useLab } from '../support/lab.js';
import { parseSystemdStatus, serviceModule, serviceRead } from '../../src/modules/service.js';
import { UNKNOWN_FACTS } from '../../src/runner/context.js';

const NAME = 'e2e-lab-sd';
const lab = useLab(NAME, 2, { systemd: true });

/** A minimal keepalived.conf (no rha involved): both BACKUP, node1 with the higher priority. */
function keepalivedConf(vip: string, priority: number): string {
  return `vrrp_instance lab {
    state BACKUP
    interface eth0
    virtual_router_id 77
    priority ${priority}
    advert_int 1
    virtual_ipaddress {
        ${vip} dev eth0
    }
}
`;
}

async function holdsVip(host: string, vip: string): Promise<boolean> {
  const r = await labExec(NAME, host, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
  return r.stdout.includes(` inet ${vip}/`);
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('rha lab up --systemd', () => {
  it("the service module's status read (one systemctl call, alone or for many units) says what is-active and is-enabled say", async () => {
    const info = lab();
    const h = info.hosts[0].name;
    // A unit systemd generates from an init.d script: its state comes from is-enabled (update-rc.d).
    const sysv = '#!/bin/sh\n### BEGIN INIT INFO\n# Provides: rha-sysv\n# Default-Start: 2 3 4 5\n# Default-Stop: 0 1 6\n### END INIT INFO\nexit 0\n';
    const setup = await sshRun(info, h, `printf '${sysv.replace(/\n/g, '\\n')}' > /etc/init.d/rha-sysv && chmod 755 /etc/init.d/rha-sysv && systemctl daemon-reload`);
    expect(setup.code, setup.stderr).toBe(0);
    const units = ['ssh', 'systemd-journald', 'keepalived', 'rha-no-such-unit', 'rha-sysv'];
    const facts = { ...UNKNOWN_FACTS, serviceManager: 'systemd' as const };
    const reads = units.map((name) => serviceRead(serviceModule.args.parse({ name, enabled: true }), facts));
    const q = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;
    const sh = (script: string, args: string[]) => sshRun(info, h, `sh -c ${q(script)} sh ${args.map(q).join(' ')}`);
    const bulk = reads[0].bulk!.reader;
    const many = await sh(bulk.script, units);
    const split = bulk.split(many.stdout, units);
    let compared = 0;
    for (const [i, unit] of units.entries()) {
      const was = await sshRun(info, h, `echo "load=$(systemctl show -p LoadState --value -- ${unit})"; echo "active=$(systemctl is-active -- ${unit})"; echo "enabled=$(systemctl is-enabled -- ${unit} 2>/dev/null)"`);
      const single = await sh(reads[i].script, reads[i].args);
      expect(single.code, single.stderr).toBe(0);
      expect(parseSystemdStatus(single.stdout), unit).toEqual(parseSystemdStatus(was.stdout));
      if (split[i] !== undefined) {
        expect(split[i], unit).toBe(single.stdout);
        compared++;
      }
    }
    // Native units come from the one call; a generated unit (and a missing one) read alone.
    expect(split[units.indexOf('ssh')]).toBeDefined();
    expect(split[units.indexOf('systemd-journald')]).toBeDefined();
    expect(split[units.indexOf('rha-no-such-unit')]).toBeUndefined();
    expect(split[units.indexOf('rha-sysv')]).toBeUndefined();
    expect(compared).toBeGreaterThanOrEqual(2);
  });

  it('boots systemd as PID 1 on every host, with sshd running as its unit', async () => {
    const info = lab();
    expect(info.kind).toBe('systemd');
    for (const h of info.hosts) {
      const r = await sshRun(info, h.name, 'ps -o comm= -p 1; systemctl is-system-running --wait; systemctl is-active ssh.service; hostname');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`systemd\nrunning\nactive\n${h.name}\n`);
    }
  });

  it('keepalived runs through its unit and VRRP moves the VIP when the master stops', async () => {
    const info = lab();
    const vip = info.clusters[0].vip;
    const vipAddr = vip.split('/')[0];
    for (const [host, prio] of [['node1', 150], ['node2', 100]] as const) {
      const inst = await sshRun(
        info,
        host,
        'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q keepalived >/dev/null 2>&1; ' +
          'cat > /etc/keepalived/keepalived.conf && systemctl restart keepalived && systemctl is-active keepalived',
        { stdin: keepalivedConf(vip, prio) },
      );
      expect(inst.stdout.trim(), inst.stderr).toBe('active');
    }
    await waitFor('node1 to hold the VIP', () => holdsVip('node1', vipAddr));
    expect(await holdsVip('node2', vipAddr)).toBe(false);
    // The VIP answers from the controller, through the lab bridge (sshd listens on every address).
    expect(await sshBanner(vipAddr)).toBe(true);
    expect((await sshRun(info, 'node1', 'systemctl stop keepalived && systemctl is-active keepalived')).stdout.trim()).toBe('inactive');
    await waitFor('node2 to take the VIP', () => holdsVip('node2', vipAddr));
    expect(await holdsVip('node1', vipAddr)).toBe(false);
  }, 5 * 60_000);

  it('reboot: systemctl reboot inside, the host comes back with its disk, host key, enabled units, and no stale VIP', async () => {
    const info = lab();
    const vipAddr = info.clusters[0].vip.split('/')[0];
    const before = (await labStatus(NAME))!.hosts.find((h) => h.name === 'node2')!.pid;
    await sshRun(info, 'node2', 'echo kept > /root/disk-mark && systemctl enable keepalived 2>/dev/null; echo booted-once > /run/run-mark');
    expect(await holdsVip('node2', vipAddr)).toBe(true);
    const h = await labReboot(NAME, 'node2');
    expect(h.pid).not.toBe(before);
    // Strict host key checking passes: same key. /run is fresh, the disk is not.
    const r = await sshRun(info, 'node2', 'cat /root/disk-mark; cat /run/run-mark 2>/dev/null || echo fresh-run; ps -o comm= -p 1; systemctl is-system-running --wait; systemctl is-active keepalived');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('kept\nfresh-run\nsystemd\nrunning\nactive\n');
    // keepalived started at boot from its enabled unit: node1's is stopped, so node2 holds the VIP
    // again, taken by the new keepalived, not left on the NIC by the old boot.
    await waitFor('node2 to take the VIP after its reboot', () => holdsVip('node2', vipAddr));
    const journal = await sshRun(info, 'node2', 'journalctl -b -u keepalived --no-pager -o cat | grep -c "Entering MASTER STATE"');
    expect(Number(journal.stdout.trim())).toBeGreaterThanOrEqual(1);
  }, 5 * 60_000);

  it('replace boots a blank disk with a new host key', async () => {
    const info = lab();
    await labReplace(NAME, 'node1');
    const blank = await labExec(NAME, 'node1', ['sh', '-c', 'ps -o comm= -p 1; ls /root; command -v keepalived || echo no-keepalived']);
    expect(blank.stdout).toBe('systemd\nno-keepalived\n');
    expect((await sshRun(info, 'node1', 'true')).stderr).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED');
    await labAcceptHostKey(NAME, 'node1');
    expect((await sshRun(info, 'node1', 'hostname')).stdout).toBe('node1\n');
  }, 5 * 60_000);

  it('refuses to reboot a namespace host', async () => {
    // A lab of the other kind is cheap (one host, no systemd): its error names the cure.
    const other = `${NAME}-ns`;
    try {
      await labUp({ name: other, hosts: 1, recreate: true });
      await expect(labReboot(other, 'node1')).rejects.toThrow(/not systemd: reboot needs a lab made with rha lab up --systemd/);
    } finally {
      await labDown(other);
    }
  }, 5 * 60_000);

  it('down leaves no namespace, process, mount or folder', async () => {
    await labDown(NAME);
    const netns = (await run(['ip', 'netns', 'list'])).stdout;
    expect(netns).not.toContain(`rha-${NAME}-`);
    const ps = await run(['pgrep', '-f', `rha-${NAME}-`]);
    expect(ps.stdout).toBe('');
    const mounts = (await run(['cat', '/proc/self/mountinfo'])).stdout;
    expect(mounts).not.toContain(labDiskDir(NAME));
    expect(existsSync(labDir(NAME))).toBe(false);
    expect(existsSync(labDiskDir(NAME))).toBe(false);
  });
});
