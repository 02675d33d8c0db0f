"""LiteFS's checksums and LTX files in Python, a third implementation for the tests.

Reads JSON from stdin: {"pageSize": n, "pages": ["<hex>", ...], "strings": ["<hex>", ...],
"ltx": {"minTxid": n, "maxTxid": n, "commit": n, "post": "<hex u64>", "pages": [[pgno, "<hex>"], ...]}}
and writes JSON: the CRC-64 (Go's ISO table) of each string, each page's LiteFS checksum, the
database checksum (the lock-byte page left out), and an LTX file (ltx v0.3 layout, uncompressed).

The CRC is computed one bit at a time from the polynomial's definition (x^64 + x^4 + x^3 + x + 1,
reflected), independent of both TypeScript implementations.
"""
import json
import struct
import sys

POLY_REFLECTED = 0xD800000000000000
MASK = (1 << 64) - 1
FLAG = 1 << 63


def crc64(data, crc=0):
    crc = ~crc & MASK
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY_REFLECTED if crc & 1 else crc >> 1
    return ~crc & MASK


def page_checksum(pgno, page):
    return FLAG | crc64(struct.pack('>I', pgno) + page)


def database_checksum(pages, page_size):
    lock = (1 << 30) // page_size + 1
    total = 0
    for index, page in enumerate(pages):
        if index + 1 == lock:
            continue
        total = FLAG | (total ^ page_checksum(index + 1, page))
    return total


def ltx_file(spec, page_size):
    header = b'LTX1' + struct.pack('>III', 0, page_size, spec['commit'])
    header += struct.pack('>QQQQ', spec['minTxid'], spec['maxTxid'], 1700000000000, 0)
    header += struct.pack('>QQIIQ', 0, 0, 0, 0, 0)
    header += bytes(100 - len(header))
    body = header
    for pgno, data in spec['pages']:
        body += struct.pack('>I', pgno) + bytes.fromhex(data)
    body += struct.pack('>I', 0) + struct.pack('>Q', int(spec['post'], 16))
    return body + struct.pack('>Q', FLAG | crc64(body))


def main():
    request = json.load(sys.stdin)
    page_size = request.get('pageSize', 4096)
    pages = [bytes.fromhex(page) for page in request.get('pages', [])]
    answer = {
        'strings': ['%016x' % crc64(bytes.fromhex(s)) for s in request.get('strings', [])],
        'pages': ['%016x' % page_checksum(i + 1, page) for i, page in enumerate(pages)],
        'database': '%016x' % database_checksum(pages, page_size),
    }
    if 'ltx' in request:
        answer['ltx'] = ltx_file(request['ltx'], page_size).hex()
    json.dump(answer, sys.stdout)


main()
