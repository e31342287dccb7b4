#!/usr/bin/env python3
"""make_hostile.py OUT CANARY: writes one hostile scene archive per class of
attack into the folder OUT, and OUT/expected.tsv: each file's name, a
regular expression the master's refusal must match, and what it tries.

CANARY is a folder the archives aim at (absolute paths, '..', links): if
any of them were ever extracted, files would appear there. Archives are
made with Python's tarfile and zipfile (and bytes patched by hand where
those refuse to lie); they assume the master's limits of hostile.sh:
--max-archive-entries 1000 --max-archive-size 8 --max-archive-ratio 100.
"""
import bz2
import gzip
import io
import os
import sys
import tarfile
import zipfile

out, canary = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
rel_canary = os.path.relpath(canary, '/')  # for paths that climb with '..'
climb = '../' * 12 + rel_canary           # far above any extraction root
expected = []


def write(name, data, pattern, what):
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)
    expected.append((name, pattern, what))


def info(name, kind=tarfile.REGTYPE, size=0, mode=0o644, link=''):
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.linkname, ti.mtime = kind, size, mode, link, 0
    return ti


def tar(members, fmt=tarfile.GNU_FORMAT, comp=None):
    """members: (TarInfo, data or None). Returns the archive's bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=fmt) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    if comp == 'gz':
        return gzip.compress(raw, 9, mtime=0)
    if comp == 'bz2':
        return bz2.compress(raw, 9)
    return raw


def f(name, data=b'x', mode=0o644):
    return (info(name, size=len(data), mode=mode), data)


SCENE = f('scene.json', b'{"version": 1, "resolution": [8, 6]}')

# Paths that leave the root.
write('absolute.tar', tar([SCENE, f('/' + rel_canary + '/pwned')]),
      'has an absolute path', 'an absolute path into the canary')
write('dotdot.tar', tar([SCENE, f(climb + '/pwned')]),
      'escapes the scene root', "'..' up to the canary")
write('dotdot-inner.tar.gz', tar([SCENE, f('a/b/../../../' + climb + '/pwned')], comp='gz'),
      'escapes the scene root', "'..' hidden inside the path")

# Links that leave the root, directly or through other links.
write('symlink.tar', tar([SCENE, (info('up', tarfile.SYMTYPE, link=climb), None)]),
      r"escapes the scene root \(link to '\.\./", 'a symbolic link to the canary')
write('symlink-write.tar', tar([SCENE, (info('up', tarfile.SYMTYPE, link=climb), None),
                                f('up/pwned')]),
      "goes through 'up', which is not a folder|escapes the scene root",
      'a symbolic link to the canary, then a file written through it')
write('symlink-absolute.tar', tar([SCENE, (info('etc', tarfile.SYMTYPE, link='/etc'), None)]),
      r"escapes the scene root \(link to '/etc'\)", 'a symbolic link to /etc')
write('symlink-chain.tar', tar([SCENE, (info('a', tarfile.DIRTYPE, mode=0o755), None),
                                (info('a/up', tarfile.SYMTYPE, link='..'), None),
                                (info('b', tarfile.SYMTYPE, link='a/up/..'), None)]),
      'escapes the scene root', 'a chain of links that climbs out only when followed')
write('symlink-chain-deep.tar', tar([SCENE] + [
    (info('l%d' % i, tarfile.SYMTYPE, link='l%d' % (i + 1)), None) for i in range(40)] +
    [(info('l40', tarfile.SYMTYPE, link='..'), None)]),
      'escapes the scene root|chain of more than', 'forty links deep, the last one out')
write('symlink-loop.tar', tar([SCENE, (info('x', tarfile.SYMTYPE, link='y'), None),
                               (info('y', tarfile.SYMTYPE, link='x'), None)]),
      'link loop', 'two links that point at each other')
write('hardlink.tar', tar([SCENE, (info('h', tarfile.LNKTYPE, link=climb + '/keep'), None)]),
      r'escapes the scene root \(hard link', "a hard link to a file beside the root")
write('hardlink-chain.tar', tar([SCENE, (info('d', tarfile.SYMTYPE, link='..'), None),
                                 (info('h', tarfile.LNKTYPE, link='d/keep'), None)]),
      'hard link|escapes the scene root', 'a hard link through a link that leaves the root')

# Things that are not files.
write('device.tar', tar([SCENE, (info('dev/null', tarfile.CHRTYPE), None)]),
      'is a device node', 'a character device')
write('block-device.tar', tar([SCENE, (info('sda', tarfile.BLKTYPE), None)]),
      'is a device node', 'a block device')
write('fifo.tar', tar([SCENE, (info('pipe', tarfile.FIFOTYPE), None)]),
      'is a FIFO', 'a FIFO')
write('setuid.tar', tar([SCENE, f('bin/tool', b'#!/bin/sh\n', 0o4755)]),
      'is setuid', 'a setuid program')
write('setgid.tar', tar([SCENE, f('bin/tool', b'#!/bin/sh\n', 0o2755)]),
      'is setgid', 'a setgid program')

# Past the limits.
write('long-name.tar', tar([SCENE, f('n' * 300)]),
      'has a name longer than 255 bytes', 'a 300-byte name')
write('long-path.tar', tar([SCENE, f('/'.join(['d' * 50] * 30))]),
      'has a path longer than 1024 bytes', 'a 1529-byte path')
write('many-entries.tar.gz', tar([SCENE] + [f('f/%05d' % i, b'') for i in range(1500)],
                                 comp='gz'),
      'more than 1000 entries', '1500 entries, past --max-archive-entries 1000')
write('too-big.tar', tar([SCENE, f('noise', os.urandom(9 << 20))]),
      'expands past 8 MiB limit|larger than the 8 MiB limit', '9 MiB of noise, past --max-archive-size 8')
# Bombs: members of honest sizes under the limits, whose sum expands past
# 100 times the archive (the ratio is counted as the data is read), and one
# member that declares its whole 60 MiB (refused on its header).
ZEROS = [f('zeros/%d' % i, bytes(3 << 20)) for i in range(2)]
write('gzip-bomb.tar.gz', tar([SCENE] + ZEROS, comp='gz'),
      'expands more than 100 times', '6 MiB of zeros in a gzip of 6 KiB')
write('gzip-bomb-one.tar.gz', tar([SCENE, f('zeros', bytes(60 << 20))], comp='gz'),
      'larger than the 8 MiB limit', 'one member of 60 MiB of zeros in a gzip of 60 KiB')
write('bzip2-bomb.tar.bz2', tar([SCENE] + ZEROS, comp='bz2'),
      'expands more than 100 times', '6 MiB of zeros in a few hundred bytes of bzip2')
zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr('scene.json', SCENE[1])
    for i in range(2):
        z.writestr('zeros/%d' % i, bytes(3 << 20))
write('zip-bomb.zip', zbuf.getvalue(), 'expands more than 100 times',
      '6 MiB of zeros deflated in a zip')

# Sparse: a member that declares a terabyte and holds one block (GNU sparse
# 0.1 in PAX headers, which tarfile writes as plain headers).
sp = info('sparse', size=512)
sp.pax_headers = {'GNU.sparse.size': str(1 << 40), 'GNU.sparse.numblocks': '1',
                  'GNU.sparse.offset': '0', 'GNU.sparse.numbytes': '512',
                  'GNU.sparse.name': 'sparse'}
write('sparse.tar', tar([SCENE, (sp, b'\x01' * 512)], fmt=tarfile.PAX_FORMAT),
      'larger than the 8 MiB limit|expands', 'a sparse member that declares 1 TiB')

# Broken and lying.
good = tar([SCENE, f('tex/noise.bin', os.urandom(512 << 10))], comp='gz')
write('truncated.tar.gz', good[:len(good) // 2], "truncated or damaged at entry 'tex/noise.bin'",
      'a gzip cut in half, in the middle of a member')
write('truncated-header.tar.gz', good[:60], 'not an archive \\(truncated',
      'a gzip cut before the first header')
raw = bytearray(tar([SCENE, f('data', b'y' * 100)]))
pos = raw.find(b'data\0')
raw[pos + 124:pos + 136] = b'%011o\0' % (1 << 20)  # size field: 1 MiB
chk = sum(raw[pos:pos + 148]) + 8 * 32 + sum(raw[pos + 156:pos + 512])
raw[pos + 148:pos + 156] = b'%06o\0 ' % chk
write('lying-size.tar', bytes(raw[:pos + 512 + 1024]), 'truncated or damaged',
      'a header that says 1 MiB where 1 KiB follows')
zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, 'w', zipfile.ZIP_STORED) as z:
    z.writestr('scene.json', SCENE[1])
    z.writestr('data', b'z' * 1000)
zraw = bytearray(zbuf.getvalue())
cd = zraw.rfind(b'PK\x01\x02')  # the central directory entry of 'data': sizes
zraw[cd + 20:cd + 28] = (10).to_bytes(4, 'little') * 2  # claim 10 bytes
lh = zraw.find(b'PK\x03\x04', 1)
zraw[lh + 14:lh + 18] = b'\xde\xad\xbe\xef'  # and a wrong CRC in its local header
write('lying.zip', bytes(zraw), 'damaged|crc|CRC|truncated|not an archive',
      'a zip whose directory lies about sizes and CRC')
write('not-an-archive.tar.gz', b'these are not the frames you are looking for\n' * 50,
      'not an archive', 'text named like an archive')
write('empty.tar', bytes(10240), 'not an archive', 'a tar of zero blocks, no entries')
write('control-chars.tar', tar([SCENE, f('\x1b[31mred')]), 'control character',
      'a name with an escape sequence')
write('duplicate.tar', tar([SCENE, f('a', b'1'), f('a', b'2')]), 'appears twice',
      'one name twice, the second to replace the first')

with open(os.path.join(out, 'expected.tsv'), 'w') as tsv:
    for name, pattern, what in expected:
        tsv.write('%s\t%s\t%s\n' % (name, pattern, what))
print('%d hostile archives in %s' % (len(expected), out))
