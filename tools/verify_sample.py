#!/usr/bin/env python3
"""Independent verifier of a webir-audit sample audit (spec webir-audit/sample/v1).

Written from docs/sampling.md alone, with the Python 3 standard library only
(hashlib, json, struct), so an auditor who does not run Rust can check that a
published sample was drawn as the spec says.

Usage:
    python3 tools/verify_sample.py RUN_DIR_OR_MANIFEST [--population FILE]
    python3 tools/verify_sample.py --self-test

It reads manifest.json and population.tsv (beside the manifest unless
--population is given), checks the population digest, recomputes every
stratum's accounts and every selected account's records from the seed, checks
the sample digest, and prints MATCH (exit 0) or the first difference (exit 1);
without population.tsv (an evidence bundle exported without personal data) it
checks the manifest's own digest and prints NOT RE-DRAWN (exit 3).
"""

import hashlib
import json
import os
import struct
import sys

SPEC_VERSION = "webir-audit/sample/v1"


# --- ChaCha20 (RFC 8439 block function; nonce 0, block counter 0) ----------

def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _quarter(x, a, b, c, d):
    x[a] = (x[a] + x[b]) & 0xFFFFFFFF
    x[d] = _rotl(x[d] ^ x[a], 16)
    x[c] = (x[c] + x[d]) & 0xFFFFFFFF
    x[b] = _rotl(x[b] ^ x[c], 12)
    x[a] = (x[a] + x[b]) & 0xFFFFFFFF
    x[d] = _rotl(x[d] ^ x[a], 8)
    x[c] = (x[c] + x[d]) & 0xFFFFFFFF
    x[b] = _rotl(x[b] ^ x[c], 7)


def chacha20_block0(key):
    """The first 64-byte ChaCha20 keystream block for a 32-byte key, with
    counter and nonce all zero (the same in the original and IETF layouts)."""
    state = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    state += list(struct.unpack("<8I", key)) + [0, 0, 0, 0]
    x = list(state)
    for _ in range(10):
        _quarter(x, 0, 4, 8, 12)
        _quarter(x, 1, 5, 9, 13)
        _quarter(x, 2, 6, 10, 14)
        _quarter(x, 3, 7, 11, 15)
        _quarter(x, 0, 5, 10, 15)
        _quarter(x, 1, 6, 11, 12)
        _quarter(x, 2, 7, 8, 13)
        _quarter(x, 3, 4, 9, 14)
    return struct.pack("<16I", *[(a + b) & 0xFFFFFFFF for a, b in zip(x, state)])


# --- The spec's primitives --------------------------------------------------

def enc(s):
    b = s.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def ticket(*fields):
    """ticket(f1, ..., fn) as 32 bytes (compare as bytes = as big-endian int)."""
    key = hashlib.sha256(enc(SPEC_VERSION) + b"".join(enc(f) for f in fields)).digest()
    return chacha20_block0(key)[:32]


def accounts_to_select(n_in_use, percent):
    return min((n_in_use * percent + 99) // 100, n_in_use)


def mask_national_id(s):
    if s == "":
        return ""
    if len(s) < 7:
        return "*" * max(len(s), 3)
    return s[:3] + "****" + s[-3:]


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- population.tsv ---------------------------------------------------------

HEADER = ["account_id", "agency_id", "queried_at", "query_item", "subject_id", "occurrence"]
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def unescape(field):
    """sampling.md 9: only \\t \\n \\r \\\\ occur; any other backslash is an error."""
    out = []
    i = 0
    while i < len(field):
        ch = field[i]
        if ch == "\\":
            if i + 1 >= len(field) or field[i + 1] not in _ESCAPES:
                raise ValueError("undefined escape %r at character %d of %r" % (field[i:i + 2], i + 1, field))
            out.append(_ESCAPES[field[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def read_population(path):
    records = []
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8").rstrip("\n").split("\t")
        if header != HEADER:
            raise SystemExit(f"{path}: unexpected header {header}")
        for n, raw in enumerate(f, start=2):
            parts = raw.decode("utf-8").rstrip("\n").split("\t")
            if len(parts) != 6:
                raise SystemExit(f"{path}:{n}: expected 6 fields, found {len(parts)}")
            try:
                account, agency, at, item, subject, occ = [unescape(p) for p in parts]
            except ValueError as e:
                raise SystemExit(f"{path}:{n}: {e}")
            records.append((account, agency, at, item, subject, occ))
    return records


def record_key(at, item, subject, occ):
    return f"{at}|{item}|{subject}|{occ}"


def population_digest(records):
    """sampling.md 4: SHA-256 of the lines, each with its LF, sorted by bytes."""
    lines = sorted(
        f"{a}\t{g}\t{record_key(t, i, s, o)}\n".encode("utf-8") for a, g, t, i, s, o in records
    )
    h = hashlib.sha256()
    for line in lines:
        h.update(line)
    return h.hexdigest()


# --- Verification -----------------------------------------------------------

# Returned by verify() when the population file is absent: the manifest's own
# digest was checked, but the draw cannot be re-derived without the records.
WITHHELD = object()


def verify(manifest_path, population_path):
    with open(manifest_path, encoding="utf-8") as f:
        m = json.load(f)
    if m.get("spec_version") != SPEC_VERSION:
        return f"the manifest follows spec {m.get('spec_version')!r}, this verifier {SPEC_VERSION}"

    digest_input = {
        "spec_version": m["spec_version"],
        "seed": m["seed"],
        "period_id": m["period"]["id"],
        "population_digest": m["population_digest"],
        "parameters": m["parameters"],
        "units": m["units"],
    }
    sd = hashlib.sha256(canonical_json(digest_input).encode("utf-8")).hexdigest()
    if sd != m["sample_digest"]:
        return f"sample_digest {m['sample_digest']} does not match the manifest's content ({sd})"

    seed = m["seed"]
    if not (20 <= len(seed) <= 64 and seed.isascii() and seed.isdigit()):
        return f"seed {seed!r} is not 20-64 decimal digits"
    period = m["period"]["id"]
    percent = m["parameters"]["sample_account_percent"]
    per_account = m["parameters"]["sample_records_per_account"]

    if not os.path.exists(population_path):
        return WITHHELD
    records = read_population(population_path)
    digest = population_digest(records)
    if digest != m["population_digest"]:
        return (f"population digest differs: the manifest has {m['population_digest']}, "
                f"{population_path} gives {digest}")
    if len(records) != m["population_records"]:
        return f"population has {len(records)} records, the manifest says {m['population_records']}"

    agency_of = {}
    keys_of = {}
    for a, g, t, i, s, o in records:
        if agency_of.setdefault(a, g) != g:
            return f"account {a} appears in two agencies ({agency_of[a]}, {g})"
        keys_of.setdefault(a, []).append((record_key(t, i, s, o), t, i, s, int(o)))
    accounts_by_agency = {}
    for a, g in agency_of.items():
        accounts_by_agency.setdefault(g, []).append(a)
    strata = {s["agency_id"] for u in m["units"] for s in u["strata"]}
    for g in sorted(accounts_by_agency):
        if g not in strata:
            return f"agency {g} has accounts in use but no stratum in the manifest"

    for unit in m["units"]:
        for st in unit["strata"]:
            where = f"unit {unit['unit_id']}, stratum {st['agency_id']}"
            members = accounts_by_agency.get(st["agency_id"], [])
            n_use = len(members)
            n_sel = accounts_to_select(n_use, percent)
            if (n_use, n_sel) != (st["accounts_in_use"], st["accounts_selected"]):
                return (f"{where}: the manifest has N = {st['accounts_in_use']}, n = "
                        f"{st['accounts_selected']}; recomputed N = {n_use}, n = {n_sel}")
            ranked = sorted(
                ((ticket(seed, "account", period, st["agency_id"], a), a.encode("utf-8"), a)
                 for a in members)
            )[:n_sel]
            if len(st["accounts"]) != n_sel:
                return f"{where}: the manifest lists {len(st['accounts'])} accounts, n = {n_sel}"
            for rank, ((t, _, a), ma) in enumerate(zip(ranked, st["accounts"]), start=1):
                if ma["account_id"] != a:
                    return (f"{where}: account of rank {rank}: the manifest has "
                            f"{ma['account_id']}, recomputed {a} (ticket {t.hex()})")
                keys = keys_of[a]
                k = min(len(keys), per_account)
                want = (t.hex(), rank, len(keys), k)
                got = (ma["ticket"], ma["rank"], ma["records_in_period"], ma["records_selected"])
                if want != got:
                    return f"{where}, account {a}: the manifest has (ticket, rank, m, k) = {got}, recomputed {want}"
                chosen = sorted(
                    (ticket(seed, "record", period, a, key), key.encode("utf-8"), at, item, subj, occ)
                    for key, at, item, subj, occ in keys
                )[:k]
                if len(ma["records"]) != k:
                    return f"{where}, account {a}: the manifest lists {len(ma['records'])} records, k = {k}"
                for r, ((rt, _, at, item, subj, occ), mr) in enumerate(zip(chosen, ma["records"]), start=1):
                    want = (at, item, mask_national_id(subj), occ, rt.hex(), r)
                    got = (mr["queried_at"], mr["query_item"], mr["subject"], mr["occurrence"],
                           mr["ticket"], mr["rank"])
                    if want != got:
                        return f"{where}, account {a}: record of rank {r}: the manifest has {got}, recomputed {want}"
    return None


def self_test():
    """Known-answer tests: RFC 8439's all-zero vector and the spec's golden tickets."""
    failures = 0
    seed = "12345678901234567890"
    cases = [
        (chacha20_block0(bytes(32))[:32].hex(),
         "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"),
        (ticket(seed, "account", "2026H1", "KHB", "u0001").hex(),
         "4395f08c06eb94a9e6c91dc3a79b50012f79a7e7286df2892d5ea6d2c05b628a"),
        (ticket(seed, "record", "2026H1", "u0001",
                "2026-03-02T09:15:00|承保資料查詢|A123456789|1").hex(),
         "c371bdc86787f37b7cf7a58a1142cd53adbae46f42e6cdbf2034d1e89838e08c"),
        (enc("衛生局").hex(), "00000009e8a19be7949fe5b180"),
        # sampling.md 4: lines sort with their LF (a TAB, 09, sorts before it).
        (population_digest([("u1", "KHB", "2026-03-01T10:00:00", "X", "A1", "1"),
                            ("u1", "KHB", "2026-03-01T10:00:00", "X", "A1|1\t9", "1")]),
         "fa6481483ca80df1ea4c0c96158345982cc614d1dcd9fc9aaae32c68270dd55a"),
        # sampling.md 9: the four escapes, and nothing else.
        (unescape("a\\tb\\\\c\\n\\r"), "a\tb\\c\n\r"),
    ]
    for bad in ("a\\x", "a\\"):
        try:
            unescape(bad)
            cases.append(("accepted %r" % bad, "refused"))
        except ValueError:
            pass
    for got, want in cases:
        if got != want:
            print(f"self-test FAILED: {got} != {want}")
            failures += 1
    print("self-test ok" if failures == 0 else f"self-test: {failures} failed")
    return 0 if failures == 0 else 1


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--population"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    path = argv[1]
    manifest = os.path.join(path, "manifest.json") if os.path.isdir(path) else path
    population = argv[3] if len(argv) == 4 else os.path.join(os.path.dirname(manifest), "population.tsv")
    first = verify(manifest, population)
    if first is None:
        print("MATCH")
        return 0
    if first is WITHHELD:
        print(f"NOT RE-DRAWN: {population} is absent (it holds full national IDs: an evidence "
              "bundle carries it only when exported with --with-personal-data). The manifest's "
              "sample digest matches its content; the draw itself needs the population.")
        return 3
    print(f"DIFFERS: {first}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
