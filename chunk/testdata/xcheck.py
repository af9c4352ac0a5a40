# Independent check of the wire format described in doc.go: decrypts and verifies
# the TestKnownAnswer chunk with Python (pip cryptography) and RFC 8032 reference
# arithmetic for Ed25519ph. Run: python3 testdata/xcheck.py
import hashlib, struct
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
sealed = bytes.fromhex("ba010200000000016553f100000000000000000300000000000b71b00003d09000000006ede057646f322348f20c46b1cb4759a34fa07c74b8309a7e4016f9aa83e9280bc9adbf06c45da35f53f9c6243fa227831e4935bb839b8227bb49acf3f1199dfb664c2474c42a0e1fd9a9f4529d74b90495f937c0dd08")
stream = b"live-test"
mkey = bytes(range(16)); msalt = bytes(range(16, 28))
hdr = sealed[:36]
keyid, epoch, seq = struct.unpack(">IIQ", hdr[4:20])
n = struct.unpack(">I", hdr[32:36])[0]
info = b"banyan chunk v1 session key" + b"\x00" + bytes([len(stream)]) + stream + struct.pack(">II", epoch, keyid)
okm = HKDF(algorithm=hashes.SHA256(), length=28, salt=msalt, info=info).derive(mkey)
nonce = bytes(a ^ b for a, b in zip(okm[16:], struct.pack(">IQ", epoch, seq)))
pt = AESGCM(okm[:16]).decrypt(nonce, sealed[36:36+n+16], hdr)
print("plaintext", pt)
# Ed25519ph, RFC 8032 section 5.1 reference arithmetic
p = 2**255 - 19; L = 2**252 + 27742317777372353535851937790883648493
d = -121665 * pow(121666, p-2, p) % p
def inv(x): return pow(x, p-2, p)
def add(P, Q):
    A=(P[1]-P[0])*(Q[1]-Q[0])%p; B=(P[1]+P[0])*(Q[1]+Q[0])%p; C=2*P[3]*Q[3]*d%p; D=2*P[2]*Q[2]%p
    E,F,G,H=B-A,D-C,D+C,B+A
    return (E*F%p, G*H%p, F*G%p, E*H%p)
def mul(s, P):
    Q=(0,1,1,0)
    while s>0:
        if s&1: Q=add(Q,P)
        P=add(P,P); s>>=1
    return Q
def eq(P,Q): return (P[0]*Q[2]-Q[0]*P[2])%p==0 and (P[1]*Q[2]-Q[1]*P[2])%p==0
modp_sqrt_m1 = pow(2, (p-1)//4, p)
def recover_x(y, sign):
    x2=(y*y-1)*inv(d*y*y+1); 
    if x2==0: return 0
    x=pow(x2,(p+3)//8,p)
    if (x*x-x2)%p!=0: x=x*modp_sqrt_m1%p
    if x&1!=sign: x=p-x
    return x
def decompress(s):
    y=int.from_bytes(s,"little"); sign=y>>255; y&=(1<<255)-1
    x=recover_x(y,sign); return (x,y,1,x*y%p)
def compress(P):
    zi=inv(P[2]); x=P[0]*zi%p; y=P[1]*zi%p
    return int.to_bytes(y|((x&1)<<255),32,"little")
gy=4*inv(5)%p; G=(recover_x(gy,0),gy,1,recover_x(gy,0)*gy%p)
seed = hashlib.sha256(b"banyan chunk test signing key").digest()
h = hashlib.sha512(seed).digest(); a=int.from_bytes(h[:32],"little"); a&=(1<<254)-8; a|=1<<254
A = compress(mul(a,G))
ctx = b"banyan chunk v1"
dom2 = b"SigEd25519 no Ed25519 collisions" + bytes([1, len(ctx)]) + ctx
M = hashlib.sha512(bytes([len(stream)]) + stream + sealed[:-64]).digest()
sig = sealed[-64:]; R=decompress(sig[:32]); S=int.from_bytes(sig[32:],"little")
k = int.from_bytes(hashlib.sha512(dom2 + sig[:32] + A + M).digest(),"little") % L
print("ed25519ph verifies:", S < L and eq(mul(S,G), add(R, mul(k, decompress(A)))))
