// SHA-256 and MD5 of a file in the browser, fed piece by piece, so the dashboard can hash an
// image of any size without holding it in memory (WebCrypto only hashes a whole buffer, and has
// no MD5 at all; the burn protocol names images by MD5). Written from the specifications
// (FIPS 180-4, RFC 1321); tests/e2e checks the results against Python's hashlib.

class Blocks {
  constructor() {
    this.buf = new Uint8Array(64);
    this.n = 0; // bytes waiting in buf
    this.length = 0; // bytes fed so far
  }

  update(bytes) {
    this.length += bytes.length;
    let i = 0;
    if (this.n) {
      const take = Math.min(64 - this.n, bytes.length);
      this.buf.set(bytes.subarray(0, take), this.n);
      this.n += take;
      i = take;
      if (this.n === 64) {
        this.block(this.buf, 0);
        this.n = 0;
      }
    }
    for (; i + 64 <= bytes.length; i += 64) this.block(bytes, i);
    if (i < bytes.length) {
      this.buf.set(bytes.subarray(i), 0);
      this.n = bytes.length - i;
    }
  }

  /** The final padding: 0x80, zeros, then the length in bits as 8 bytes. */
  pad(bigEndian) {
    const bits = this.length * 8;
    const hi = Math.floor(bits / 2 ** 32);
    const lo = bits >>> 0;
    const tail = new Uint8Array((this.n < 56 ? 64 : 128) - this.n);
    tail[0] = 0x80;
    const view = new DataView(tail.buffer);
    if (bigEndian) {
      view.setUint32(tail.length - 8, hi);
      view.setUint32(tail.length - 4, lo);
    } else {
      view.setUint32(tail.length - 8, lo, true);
      view.setUint32(tail.length - 4, hi, true);
    }
    const length = this.length;
    this.update(tail);
    this.length = length;
  }
}

const ror = (x, n) => (x >>> n) | (x << (32 - n));
const rol = (x, n) => (x << n) | (x >>> (32 - n));
const hex = (words, littleEndian) => {
  const view = new DataView(new ArrayBuffer(words.length * 4));
  words.forEach((w, i) => view.setUint32(i * 4, w, littleEndian));
  return [...new Uint8Array(view.buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
};

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export class Sha256 extends Blocks {
  constructor() {
    super();
    this.h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this.w = new Uint32Array(64);
  }

  block(b, o) {
    const w = this.w;
    for (let t = 0; t < 16; t++) {
      const p = o + 4 * t;
      w[t] = (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
    }
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15];
      const y = w[t - 2];
      w[t] = w[t - 16] + (ror(x, 7) ^ ror(x, 18) ^ (x >>> 3)) + w[t - 7] + (ror(y, 17) ^ ror(y, 19) ^ (y >>> 10));
    }
    const h = this.h;
    let [a, bb, c, d, e, f, g, k] = h;
    for (let t = 0; t < 64; t++) {
      const t1 = (k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[t] + w[t]) | 0;
      const t2 = ((ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
      k = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = bb;
      bb = a;
      a = (t1 + t2) | 0;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
  }

  hex() {
    this.pad(true);
    return hex(this.h, false);
  }
}

const K5 = new Uint32Array(64).map((_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32));
const S5 = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

export class Md5 extends Blocks {
  constructor() {
    super();
    this.h = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
    this.m = new Uint32Array(16);
  }

  block(b, o) {
    const m = this.m;
    for (let t = 0; t < 16; t++) {
      const p = o + 4 * t;
      m[t] = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24);
    }
    const h = this.h;
    let [a, bb, c, d] = h;
    for (let i = 0; i < 64; i++) {
      let f;
      let g;
      if (i < 16) {
        f = (bb & c) | (~bb & d);
        g = i;
      } else if (i < 32) {
        f = (d & bb) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = bb ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (bb | ~d);
        g = (7 * i) % 16;
      }
      f = (f + a + K5[i] + m[g]) | 0;
      a = d;
      d = c;
      c = bb;
      bb = (bb + rol(f, S5[(i >> 4) * 4 + (i % 4)])) | 0;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
  }

  hex() {
    this.pad(false);
    return hex(this.h, true);
  }
}
