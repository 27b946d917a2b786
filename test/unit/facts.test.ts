import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import type { HostFacts } from '../../src/core/types.js';
import { FACTS_BEGIN, FACTS_END, FACTS_SCRIPT, parseFacts } from '../../src/facts/index.js';

const wrap = (body: string) => `motd noise before\n${FACTS_BEGIN}\n${body.trim()}\n${FACTS_END}\n`;

// Outputs of FACTS_SCRIPT as the hosts print them (os-release files verbatim from each distro).
const DEBIAN12_SYSTEMD = wrap(`
hostname=redis-a
os.PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
os.NAME="Debian GNU/Linux"
os.VERSION_ID="12"
os.VERSION="12 (bookworm)"
os.VERSION_CODENAME=bookworm
os.ID=debian
os.HOME_URL="https://www.debian.org/"
arch=x86_64
kernel=6.1.0-18-amd64
pkg=apt-get
systemd_run=yes
pid1=systemd
uid=1000
sudo=yes
ip4=1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
ip4=2: ens18    inet 10.0.0.11/24 brd 10.0.0.255 scope global ens18\\       valid_lft forever preferred_lft forever
ip4=2: ens18    inet 10.0.0.100/24 scope global secondary ens18\\       valid_lft forever preferred_lft forever
nproc=4
memkb=8138920
`);

const UBUNTU2204 = wrap(`
hostname=ubu
os.PRETTY_NAME="Ubuntu 22.04.4 LTS"
os.NAME="Ubuntu"
os.VERSION_ID="22.04"
os.VERSION="22.04.4 LTS (Jammy Jellyfish)"
os.VERSION_CODENAME=jammy
os.ID=ubuntu
os.ID_LIKE=debian
arch=aarch64
kernel=5.15.0-105-generic
pkg=apt-get
systemd_run=yes
pid1=systemd
uid=0
sudo=yes
ip4=1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
ip4=2: enp1s0    inet 192.168.1.20/24 metric 100 brd 192.168.1.255 scope global dynamic enp1s0\\       valid_lft 86000sec preferred_lft 86000sec
nproc=2
memkb=2010000
`);

const ROCKY9 = wrap(`
hostname=rocky9.localdomain
os.NAME="Rocky Linux"
os.VERSION="9.3 (Blue Onyx)"
os.ID="rocky"
os.ID_LIKE="rhel centos fedora"
os.VERSION_ID="9.3"
os.PLATFORM_ID="platform:el9"
os.PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
arch=x86_64
kernel=5.14.0-362.8.1.el9_3.x86_64
pkg=dnf
pkg=yum
systemd_run=yes
pid1=systemd
uid=1001
sudo=yes
ip4=1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
ip4=2: eth0    inet 192.168.122.50/24 brd 192.168.122.255 scope global dynamic noprefixroute eth0\\       valid_lft 3000sec preferred_lft 3000sec
ip4=3: eth1    inet 172.16.0.5/16 brd 172.16.255.255 scope global noprefixroute eth1\\       valid_lft forever preferred_lft forever
nproc=8
memkb=16000000
`);

// A lab host: namespaces, sshd as PID 1, no systemd, no sudo, minimal Debian.
const CONTAINER = wrap(`
hostname=node1
os.PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
os.NAME="Debian GNU/Linux"
os.VERSION_ID="12"
os.ID=debian
arch=x86_64
kernel=6.18.44
pkg=apt-get
pid1=sshd
uid=0
ip4=1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
ip4=7: eth0@if8    inet 10.213.0.11/24 brd 10.213.0.255 scope global eth0\\       valid_lft forever preferred_lft forever
nproc=2
memkb=24684100
`);

describe('parseFacts', () => {
  test.each<[string, string, HostFacts]>([
    [
      'Debian 12 with systemd, non-root user with sudo, a VIP as secondary address',
      DEBIAN12_SYSTEMD,
      {
        hostname: 'redis-a', osId: 'debian', osVersion: '12', osFamily: 'debian', arch: 'x86_64', kernel: '6.1.0-18-amd64',
        packageManager: 'apt', serviceManager: 'systemd', isRoot: false, hasSudo: true,
        interfaces: { lo: ['127.0.0.1/8'], ens18: ['10.0.0.11/24', '10.0.0.100/24'] }, cpus: 4, memoryMb: 7948,
      },
    ],
    [
      'Ubuntu 22.04 (ID_LIKE=debian), root',
      UBUNTU2204,
      {
        hostname: 'ubu', osId: 'ubuntu', osVersion: '22.04', osFamily: 'debian', arch: 'aarch64', kernel: '5.15.0-105-generic',
        packageManager: 'apt', serviceManager: 'systemd', isRoot: true, hasSudo: true,
        interfaces: { lo: ['127.0.0.1/8'], enp1s0: ['192.168.1.20/24'] }, cpus: 2, memoryMb: 1962,
      },
    ],
    [
      'Rocky 9: quoted ID, dnf preferred over yum',
      ROCKY9,
      {
        hostname: 'rocky9.localdomain', osId: 'rocky', osVersion: '9.3', osFamily: 'rhel', arch: 'x86_64',
        kernel: '5.14.0-362.8.1.el9_3.x86_64', packageManager: 'dnf', serviceManager: 'systemd', isRoot: false, hasSudo: true,
        interfaces: { lo: ['127.0.0.1/8'], eth0: ['192.168.122.50/24'], eth1: ['172.16.0.5/16'] }, cpus: 8, memoryMb: 15625,
      },
    ],
    [
      'container without systemd (PID 1 is sshd), veth name with @ifN',
      CONTAINER,
      {
        hostname: 'node1', osId: 'debian', osVersion: '12', osFamily: 'debian', arch: 'x86_64', kernel: '6.18.44',
        packageManager: 'apt', serviceManager: 'plain', isRoot: true, hasSudo: false,
        interfaces: { lo: ['127.0.0.1/8'], eth0: ['10.213.0.11/24'] }, cpus: 2, memoryMb: 24105,
      },
    ],
  ])('%s', (_name, output, want) => {
    expect(parseFacts(output)).toEqual(want);
  });

  test('/run/systemd/system without systemd as PID 1 is not systemd (and vice versa)', () => {
    const f = (body: string) => parseFacts(wrap(`uid=0\n${body}`)).serviceManager;
    expect(f('systemd_run=yes\npid1=sh')).toBe('plain');
    expect(f('pid1=systemd')).toBe('plain');
    expect(f('systemd_run=yes\npid1=systemd')).toBe('systemd');
  });

  test('unknown distribution, no package manager, missing probes', () => {
    const f = parseFacts(wrap(`hostname=x\nos.ID=alpine\nuid=1000\n`));
    expect(f).toMatchObject({ osId: 'alpine', osFamily: 'unknown', packageManager: 'none', interfaces: {}, cpus: 1, memoryMb: 0 });
  });

  test('output without the markers is an error', () => {
    expect(() => parseFacts('sh: 1: syntax error\n')).toThrow('fact output is incomplete (section markers missing)');
  });

  test('the script runs under plain POSIX sh (dash) here and parses', () => {
    const out = execFileSync('sh', ['-c', FACTS_SCRIPT]).toString();
    const f = parseFacts(out);
    expect(f.hostname).not.toBe('');
    expect(f.cpus).toBeGreaterThan(0);
    expect(f.memoryMb).toBeGreaterThan(0);
    expect(f.interfaces.lo).toEqual(['127.0.0.1/8']);
  });
});
