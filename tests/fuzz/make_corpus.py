#!/usr/bin/env python3
"""make_corpus.py: writes the seed corpus of the fuzz targets into
tests/fuzz/corpus/<target>/ (checked in; run again only to change the seeds).

    tests/fuzz/make_corpus.py [BIN]

BIN is a build's bin folder (default build/bin): its tsr-mkimg writes the
EXR seeds of fuzz_image; oiiotool, when installed, adds PNG and TIFF ones.
Seeds are small (the whole corpus stays far under 1 MB) and cover each
decoder's main paths: well-formed input of every kind it accepts and a few
refusals the fuzzer can mutate from.
"""
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, 'corpus')
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, 'build', 'bin')


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- fuzz_proto: frames as (u16 little-endian length, bytes) ----
def frames(*parts):
    out = b''
    for p in parts:
        if isinstance(p, str):
            p = p.encode()
        out += len(p).to_bytes(2, 'little') + p
    return out


H = '0' * 63 + 'a'
proto = {
    'hello': frames('TSR1', 'HELLO', json.dumps({
        'name': 'w1', 'hub': 'qy', 'slots': 2, 'gpu_slots': 1, 'cores': 8,
        'memory_mb': 1024, 'gpus': [{'name': 'x', 'memory_mb': 1}],
        'renderers': ['builtin'], 'version': '0.1.0', 'running': [3, 4]})),
    'submit': frames('TSR1', 'SUBMIT', json.dumps({
        'rid': 1, 'archive': H, 'name': 'orbit', 'renderer': 'builtin',
        'frames': '1-48', 'tiles': [2, 2], 'chunk': 1, 'priority': 50})),
    'chunk': frames('TSR1', 'CHUNK', json.dumps({'rid': 2, 'hash': H, 'offset': 0}),
                    b'\x00\x01\x02binary body'),
    'result': frames('TSR1', 'RESULT', json.dumps({
        'attempt': 9, 'ok': True, 'files': [{'frame': 1, 'hash': H, 'size': 10}],
        'render_ms': 5, 'log': 'done\n'})),
    'error': frames('TSR1', 'ERROR', json.dumps({
        'rid': 3, 're': 'GET', 'code': -4, 'error': 'not found', 'message': 'x'})),
    'unicode': frames('TSR1', 'STATUS', '{"rid": 1.0, "job": 7, "s": "\\u00e9\\ud83d\\ude00"}'),
    'badversion': frames('TSR2', 'JOBS', '{}'),
    'nested': frames('TSR1', 'JOBS', '{"a":' * 50 + '1' + '}' * 50),
    'trailing': frames('TSR1', 'JOBS', '{} {}'),
}
for name, data in proto.items():
    put('proto', name, data)

# ---- fuzz_frameset ----
for i, spec in enumerate(['1-240', '1-100x5', '1,4,9-12', '-5--1', ' 3 , 1 ,2 ',
                          '7', '1-1000000', '10-1', '1-9x0', '1,,2', '2147483647',
                          '-2147483648-2147483647x1000000']):
    put('frameset', 'seed%02d' % i, spec)

# ---- fuzz_scene ----
small = open(os.path.join(SRC, 'tests', 'data', 'small', 'scene.json')).read()
put('scene', 'small.json', small)
scene = json.loads(small)
scene['resolution'] = [3, 2]
put('scene', 'compact.json', json.dumps(scene, separators=(',', ':')))
put('scene', 'minimal.json', json.dumps({'version': 1, 'resolution': [4, 4]}))
put('scene', 'badtype.json', json.dumps({'version': 1, 'resolution': ['a', 4]}))
put('scene', 'truncated.json', small[:200])

# ---- fuzz_archive ----
SCENE = json.dumps({'version': 1, 'resolution': [8, 6]}).encode()


def tar_bytes(members, mode='w'):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as t:
        for m in members:
            kind, name = m[0], m[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if kind == 'file':
                ti.size = len(m[2])
                ti.mode = m[3] if len(m) > 3 else 0o644
                t.addfile(ti, io.BytesIO(m[2]))
            elif kind == 'dir':
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                t.addfile(ti)
            elif kind == 'sym':
                ti.type = tarfile.SYMTYPE
                ti.linkname = m[2]
                t.addfile(ti)
            elif kind == 'hard':
                ti.type = tarfile.LNKTYPE
                ti.linkname = m[2]
                t.addfile(ti)
            elif kind == 'fifo':
                ti.type = tarfile.FIFOTYPE
                t.addfile(ti)
    return buf.getvalue()


good = [('dir', 'tex'), ('file', 'scene.json', SCENE), ('file', 'tex/a.txt', b'abc' * 10),
        ('sym', 'tex/b.txt', 'a.txt'), ('hard', 'tex/c.txt', 'tex/a.txt')]
put('archive', 'good.tar', tar_bytes(good))
put('archive', 'good.tar.gz', gzip.compress(tar_bytes(good), mtime=0))
if shutil.which('zstd'):
    put('archive', 'good.tar.zst',
        subprocess.run(['zstd', '-q', '-c'], input=tar_bytes(good), stdout=subprocess.PIPE,
                       check=True).stdout)
zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr(zipfile.ZipInfo('scene.json', (1980, 1, 1, 0, 0, 0)), SCENE)
    z.writestr(zipfile.ZipInfo('tex/', (1980, 1, 1, 0, 0, 0)), b'')
    z.writestr(zipfile.ZipInfo('tex/a.txt', (1980, 1, 1, 0, 0, 0)), b'x' * 100)
put('archive', 'good.zip', zbuf.getvalue())
put('archive', 'escape.tar', tar_bytes([('file', '../x', b'x'), ('file', '/abs', b'y')]))
put('archive', 'chain.tar', tar_bytes([('dir', 'a'), ('sym', 'a/up', '..'),
                                       ('sym', 'b', 'a/up/..'), ('file', 'c', b'c')]))
put('archive', 'special.tar', tar_bytes([('fifo', 'p'), ('file', 'suid', b's', 0o4755)]))
put('archive', 'bomb.tar.gz', gzip.compress(tar_bytes([('file', 'z', b'\0' * 200000)]),
                                            mtime=0))
put('archive', 'truncated.tar.gz', gzip.compress(tar_bytes(good), mtime=0)[:300])

# ---- fuzz_image ----
mkimg = os.path.join(BIN, 'tsr-mkimg')
if os.access(mkimg, os.X_OK):
    tmp = tempfile.mkdtemp()
    for name, args in [('whole.exr', ['4', '4', '0', '0', '4', '4', '0.5']),
                       ('tile.exr', ['8', '8', '4', '0', '8', '4', '1']),
                       ('nan.exr', ['4', '4', '0', '0', '4', '4', 'nan'])]:
        p = os.path.join(tmp, name)
        subprocess.run([mkimg, p] + args, check=True)
        put('image', name, open(p, 'rb').read())
    if shutil.which('oiiotool'):
        for ext in ['png', 'tif']:
            p = os.path.join(tmp, 'x.' + ext)
            subprocess.run(['oiiotool', os.path.join(tmp, 'whole.exr'), '-d', 'uint8',
                            '-o', p], check=True)
            put('image', 'whole.' + ext, open(p, 'rb').read())
    shutil.rmtree(tmp)
else:
    print('make_corpus.py: no %s; image seeds left as they are' % mkimg, file=sys.stderr)

total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
print('corpus: %d bytes in %s' % (total, OUT))
