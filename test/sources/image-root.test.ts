import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import yazl from 'yazl';
import { SourceFileError } from '../../core/errors.ts';
import { setS3Storage, storageFor } from '../../core/storage/index.ts';
import { S3Storage } from '../../core/storage/s3.ts';
import { type ImageRoot, openImageRoot, readImage } from '../../sources/image-root/index.ts';
import { checkImagePath } from '../../sources/image-root/safe-path.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';

let dir = '';
let s3: TestS3;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mixforge-image-root-'));
  s3 = await startS3(['imgs']);
});
after(async () => {
  await s3.stop();
  await rm(dir, { recursive: true, force: true });
});

class CountingS3 extends S3Storage {
  ranged = 0;
  override readRange(uri: string, start: number, end: number): Promise<Uint8Array> {
    this.ranged++;
    return super.readRange(uri, start, end);
  }
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Distinct bytes per name, so a wrong member can never pass for the right one. */
function bytesFor(name: string, size = 3000): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (name.charCodeAt(i % name.length) * 31 + i) & 0xff;
  return b;
}

const LONG_NAME = `deep/${'long-folder-name/'.repeat(8)}picture.jpg`; // > 100 bytes: GNU/pax long names
const MEMBERS = ['00453/004539375.jpg', '00000/000000012.png', 'a b/ü.webp', LONG_NAME];

async function writeTree(root: string, names: string[]): Promise<void> {
  for (const n of names) {
    await mkdir(dirname(join(root, n)), { recursive: true });
    await writeFile(join(root, n), bytesFor(n, 1000 + n.length * 37));
  }
}

async function writeZipWithYazl(path: string, names: string[], prefix = ''): Promise<void> {
  const zip = new yazl.ZipFile();
  names.forEach((n, i) => {
    zip.addBuffer(bytesFor(n, 1000 + n.length * 37), prefix + n, { compress: i % 2 === 0 });
  });
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(path));
}

async function expectImages(root: ImageRoot, names: string[]): Promise<void> {
  for (const n of names) {
    const r = await readImage(root, n);
    assert.ok(r.found, `${n}: ${r.found ? '' : r.message}`);
    assert.deepEqual(Buffer.from(r.bytes), bytesFor(n, 1000 + n.length * 37), n);
  }
  const miss = await readImage(root, '00453/nope.jpg');
  assert.equal(miss.found ? 'found' : miss.reason, 'missing-image');
  const traversal = await readImage(root, '../outside.jpg');
  assert.equal(traversal.found ? 'found' : traversal.reason, 'unsafe-image-path');
}

describe('checkImagePath', () => {
  it('canonicalises plain relative paths and rejects escapes', () => {
    assert.deepEqual(checkImagePath('./coco//train2017/x.jpg'), { safe: true, path: 'coco/train2017/x.jpg' });
    for (const bad of [
      '../x.jpg',
      'coco/../../x.jpg',
      'a/../b.jpg',
      '/etc/passwd',
      'C:/x.jpg',
      's3://other/x.jpg',
      'a\\..\\b.jpg',
      'x\0.jpg',
      '',
      './',
    ]) {
      assert.equal(checkImagePath(bad).safe, false, JSON.stringify(bad));
    }
  });
});

describe('local folder root', () => {
  it('reads files, follows symlinks inside the root and refuses symlinks out of it', async () => {
    const root = join(dir, 'folder');
    await writeTree(root, MEMBERS);
    await writeFile(join(dir, 'secret.jpg'), 'secret');
    await symlink(join(dir, 'secret.jpg'), join(root, 'escape.jpg'));
    await symlink(dir, join(root, 'up'));
    await symlink(join(root, '00453'), join(root, 'alias'));
    const r = await openImageRoot(root);
    await expectImages(r, MEMBERS);
    for (const p of ['escape.jpg', 'up/secret.jpg']) {
      const out = await readImage(r, p);
      assert.equal(out.found ? 'found' : out.reason, 'unsafe-image-path', p);
      assert.match(out.found ? '' : out.message, /outside the image root/);
    }
    const inside = await readImage(r, 'alias/004539375.jpg');
    assert.ok(inside.found);
    const folder = await readImage(r, '00453');
    assert.equal(folder.found ? 'found' : folder.reason, 'missing-image');
  });

  it('fails with SourceFileError when the root does not exist', async () => {
    await assert.rejects(
      openImageRoot(join(dir, 'no-such-root')),
      (err: unknown) => err instanceof SourceFileError && /image root does not exist/.test(err.message),
    );
  });

  it('looks into <segment>.tar beside the folder and explains .tar.gz', async () => {
    const root = join(dir, 'with-archives');
    await writeTree(join(root, 'coco'), ['train2017/1.jpg']);
    const staging = join(dir, 'staging-ocr');
    await writeTree(join(staging, 'ocr_vqa'), ['images/7.jpg']);
    execFileSync('tar', ['-cf', join(root, 'ocr_vqa.tar'), '-C', staging, 'ocr_vqa']);
    execFileSync('tar', ['-czf', join(root, 'gqa.tar.gz'), '-C', staging, 'ocr_vqa']);
    const r = await openImageRoot(root);
    const direct = await readImage(r, 'coco/train2017/1.jpg');
    assert.ok(direct.found);
    const viaTar = await readImage(r, 'ocr_vqa/images/7.jpg');
    assert.ok(viaTar.found);
    assert.deepEqual(Buffer.from(viaTar.bytes), bytesFor('images/7.jpg', 1000 + 'images/7.jpg'.length * 37));
    const gz = await readImage(r, 'gqa/images/1.jpg');
    assert.equal(gz.found ? 'found' : gz.reason, 'missing-image');
    assert.match(
      gz.found ? '' : gz.message,
      /gqa\.tar\.gz exists but compressed tar archives cannot be read/,
    );
  });
});

describe('zip root', () => {
  it('reads stored and deflated members written by yazl, locally and on S3', async () => {
    const path = join(dir, 'images.zip');
    await writeZipWithYazl(path, MEMBERS);
    await expectImages(await openImageRoot(path), MEMBERS);
    await storageFor('s3://imgs/p/images.zip').writeAtomic('s3://imgs/p/images.zip', await readFile(path));
    await expectImages(await openImageRoot('s3://imgs/p/images.zip'), MEMBERS);
  });

  it('reads the central directory in a few ranged requests, then one request per member', async () => {
    const names = Array.from({ length: 1500 }, (_, i) => `${String(i % 7).padStart(5, '0')}/${i}.jpg`);
    const zip = new yazl.ZipFile();
    for (const n of names) zip.addBuffer(bytesFor(n, 200), n, { compress: true });
    zip.end();
    const path = join(dir, 'many.zip');
    await pipeline(zip.outputStream, createWriteStream(path));
    const uri = 's3://imgs/many/images.zip';
    await storageFor(uri).writeAtomic(uri, await readFile(path));
    const counting = new CountingS3(s3.client);
    setS3Storage(counting);
    try {
      const root = await openImageRoot(uri);
      assert.ok(counting.ranged <= 3, `central directory took ${counting.ranged} ranged reads`);
      const before = counting.ranged;
      for (const n of names.slice(100, 120)) {
        const r = await readImage(root, n);
        assert.ok(r.found && Buffer.from(r.bytes).equals(bytesFor(n, 200)), n);
      }
      assert.ok(counting.ranged - before <= 20, `${counting.ranged - before} reads for 20 members`);
    } finally {
      setS3Storage(s3.storage);
    }
  });

  it('finds members under a single top folder (images/...)', async () => {
    const path = join(dir, 'nested.zip');
    await writeZipWithYazl(path, MEMBERS.slice(0, 2), 'images/');
    const r = await openImageRoot(path);
    const hit = await readImage(r, MEMBERS[0]);
    assert.ok(hit.found);
  });

  it('reads zips written by Info-ZIP when it is installed', { skip: !hasCommand('zip') }, async () => {
    const src = join(dir, 'infozip-src');
    await writeTree(src, MEMBERS);
    const path = join(dir, 'infozip.zip');
    execFileSync('zip', ['-q', '-r', path, '.'], { cwd: src });
    const r = await openImageRoot(path);
    for (const n of MEMBERS) {
      const got = await readImage(r, n);
      assert.ok(got.found, n);
    }
  });

  it('fails with SourceFileError on something that is not a zip', async () => {
    const path = join(dir, 'bad.zip');
    await writeFile(path, 'this is not a zip archive at all');
    await assert.rejects(
      openImageRoot(path),
      (err: unknown) =>
        err instanceof SourceFileError && /bad\.zip: not a readable zip archive/.test(err.message),
    );
  });
});

describe('tar root', () => {
  async function makeTar(name: string, format: string): Promise<string> {
    const src = join(dir, `tar-src-${name}`);
    await writeTree(src, MEMBERS);
    await symlink('/etc/hostname', join(src, 'link.jpg'));
    const path = join(dir, `${name}.tar`);
    execFileSync('tar', [`--format=${format}`, '-cf', path, '-C', src, '.']);
    return path;
  }

  for (const format of ['gnu', 'pax', 'ustar']) {
    it(`reads members of a ${format} tar written by GNU tar, locally and on S3`, async () => {
      // ustar cannot hold the long name; it stores it with a prefix field if it fits, so leave it out there.
      const names = format === 'ustar' ? MEMBERS.slice(0, 3) : MEMBERS;
      const src = join(dir, `tar-src-${format}`);
      await writeTree(src, names);
      await symlink('/etc/hostname', join(src, 'link.jpg'));
      const path = join(dir, `${format}.tar`);
      execFileSync('tar', [`--format=${format}`, '-cf', path, '-C', src, '.']);
      const local = await openImageRoot(path);
      await expectImages(local, names);
      const link = await readImage(local, 'link.jpg');
      assert.equal(link.found ? 'found' : link.reason, 'missing-image', 'links are never served');
      const uri = `s3://imgs/t/${format}.tar`;
      await storageFor(uri).writeAtomic(uri, await readFile(path));
      await expectImages(await openImageRoot(uri), names);
    });
  }

  it('refuses .tar.gz with instructions, and a gzip stream named .tar', async () => {
    const path = await makeTar('for-gz', 'gnu');
    const gz = `${path}.gz`;
    execFileSync('sh', ['-c', `gzip -c '${path}' > '${gz}'`]);
    await assert.rejects(openImageRoot(gz), /cannot be read member by member; decompress it first/);
    await assert.rejects(openImageRoot(`${dir}/x.tar.gz_part1`), /cat x\.tar\.gz_part\* \| gunzip > x\.tar/);
    const disguised = join(dir, 'disguised.tar');
    await writeFile(disguised, await readFile(gz));
    await assert.rejects(openImageRoot(disguised), /disguised\.tar: compressed tar archives/);
    const junk = join(dir, 'junk.tar');
    await writeFile(junk, Buffer.alloc(2048, 7));
    await assert.rejects(
      openImageRoot(junk),
      /junk\.tar: not a tar archive \(bad header checksum at byte 0\)/,
    );
  });
});

describe('s3 prefix root', () => {
  it('reads keys under the prefix and reports missing ones', async () => {
    for (const n of MEMBERS) {
      await storageFor('s3://imgs').writeAtomic(`s3://imgs/root/${n}`, bytesFor(n, 1000 + n.length * 37));
    }
    await storageFor('s3://imgs').writeAtomic('s3://imgs/outside.jpg', 'x');
    await expectImages(await openImageRoot('s3://imgs/root/'), MEMBERS);
  });
});
