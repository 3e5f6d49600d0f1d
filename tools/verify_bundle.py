#!/usr/bin/env python3
"""Offline check of a webir-audit evidence bundle (export-evidence).

Python 3 standard library only. Given the folder the bundle was extracted
into, it checks that:

  1. every file of run/ matches run/SHA256SUMS, and nothing is missing or
     added;
  2. chain.jsonl is one unbroken chain: each entry's prev is the hash
     before it, and each hash is SHA-256 of
     "prev\\nseq\\nkind\\nid\\ndigest\\nat\\n" (docs/sampling.md, section 13);
  3. the chain holds the run's seal: an entry of kind "seal" whose id is
     the run and whose digest is the SHA-256 of run/SHA256SUMS;
  4. with --head HEX (a receipt's full head, or the 16 or more hex
     characters a mail or a workbook's summary shows), that the chain
     contains that head, and which entries it vouches for (sampling.md 13);
  5. in a bundle exported --with-inputs, that inputs/ holds exactly the
     exports run/inputs.json names, each with the hash recorded there;
  6. for a run that draws (run/manifest.json of a sample audit,
     run/selection.json of an external audit), that the chain holds the
     draw's "seed" entry with the digest sampling.md 13 gives, and, when
     the seed came by a ceremony (sampling.md 5), its "commitment" (the
     SHA-256 of the mail's text) and "seed-given" entries, in that order
     before the draw: it prints where each is, so the reader sees the seed
     was given after the commitment. A draw without a ceremony is named
     as such, with what its record says proves the seed's timing.

Exactly two files may be missing, and only when bundle.json says they were
withheld: population.tsv and rejects.csv, which may hold full national IDs
(a bundle carries them only when exported with --with-personal-data). Each
is named on the output with the hash SHA256SUMS seals it with. Any other
missing file is a problem, whatever bundle.json says (bundle.json is not
sealed).

Usage:
    python3 verify_bundle.py BUNDLE_DIR [--head HEX]

Prints OK (exit 0) or every problem found (exit 1). The sample itself is
re-drawn by verify_sample.py run/.
"""

import hashlib
import json
import os
import sys

GENESIS = "0" * 64
# The run files that may hold full national IDs: the only ones a bundle may
# leave out (export-evidence without --with-personal-data).
PERSONAL = {"population.tsv", "rejects.csv"}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_in(folder):
    """Every file under folder, as a path relative to it with "/" between parts."""
    found = set()
    for d, _, files in os.walk(folder):
        for name in files:
            found.add(os.path.relpath(os.path.join(d, name), folder).replace(os.sep, "/"))
    return found


def sha256_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find(entries, kind, id_, digest):
    """The first chain entry of that kind, id and digest, or None."""
    return next((e for e in entries
                 if e["kind"] == kind and e["id"] == id_ and e["digest"] == digest), None)


def check_draw(run, entries):
    """The draw of a sample or external audit against the chain: (problems, lines)."""
    manifest = os.path.join(run, "manifest.json")
    selection = os.path.join(run, "selection.json")
    if os.path.exists(manifest):
        with open(manifest, encoding="utf-8") as f:
            doc = json.load(f)
        key, digest, timing = doc["period"]["id"], doc["population_digest"], "seed_postdates_population"
    elif os.path.exists(selection):
        with open(selection, encoding="utf-8") as f:
            doc = json.load(f)
        key, digest, timing = doc["period_id"] + "/external-audit", doc["units_digest"], "seed_postdates_candidates"
    else:
        return [], []
    seed, n = doc["seed"], doc["draw_number"]
    drawn = find(entries, "seed", "%s#%d" % (key, n),
                 sha256_text("%s\n%d\n%s\n%s\n%s\n" % (key, n, seed, doc["seed_source"], digest)))
    if drawn is None:
        return ["the chain has no seed entry %s#%d with this draw's seed and digest" % (key, n)], []
    c = doc.get("ceremony")
    if not c:
        return [], ["draw: entry %d (%s#%d), without a ceremony: %s" % (drawn["seq"], key, n, doc.get(timing, ""))]
    problems = []
    if c["population_digest"] != digest:
        problems.append("the ceremony committed %s, the draw is from %s" % (c["population_digest"], digest))
    committed = find(entries, "commitment", key, c["commitment_sha256"])
    given = find(entries, "seed-given", key, sha256_text("%s\n%s\n%s\n%s\n%s\n" % (
        key, seed, c["seed_given_at"], c["seed_given_by"], c["seed_via"])))
    if committed is None:
        problems.append("the chain has no commitment of %s with the manifest's commitment_sha256" % key)
    if given is None:
        problems.append("the chain has no seed-given entry of %s with this seed" % key)
    if problems:
        return problems, []
    if not committed["seq"] < given["seq"] < drawn["seq"]:
        return ["the chain has the commitment (entry %d), the seed given (entry %d) and the draw (entry %d) out of order"
                % (committed["seq"], given["seq"], drawn["seq"])], []
    # A sample's population is frozen (kind "freeze", its digest) as it is
    # committed; the external audit's candidates are only committed.
    frozen = [e for e in entries if e["kind"] == "freeze" and e["id"] == key
              and e["digest"] == digest and e["seq"] < committed["seq"]]
    freeze = "freeze entry %d, " % frozen[-1]["seq"] if frozen else ""
    return [], ["ceremony: %scommitment entry %d at %s (%d mails), seed given entry %d at %s, draw entry %d: "
                "the seed was given after the commitment" % (
                    freeze, committed["seq"], committed["at"], len(c["commitment_messages"]),
                    given["seq"], given["at"], drawn["seq"])]


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    root = argv[1]
    head = None
    if "--head" in argv:
        head = argv[argv.index("--head") + 1].strip().lower()
    problems = []
    notes = []
    with open(os.path.join(root, "bundle.json"), encoding="utf-8") as f:
        bundle = json.load(f)
    withheld = {w["file"][len("run/"):] for w in bundle.get("withheld", [])} & PERSONAL
    run = os.path.join(root, "run")
    listed = {}
    with open(os.path.join(run, "SHA256SUMS"), "rb") as f:
        raw = f.read()
    # sampling.md 9: "<64 lowercase hex>  <path>" LF per file, sorted by path bytes.
    names = []
    for line in raw.decode("utf-8").split("\n")[:-1] if raw.endswith(b"\n") else [None]:
        if line is None or len(line) < 67 or line[64:66] != "  " or \
                any(c not in "0123456789abcdef" for c in line[:64]):
            problems.append("run/SHA256SUMS: not in the format sampling.md 9 gives")
            break
        listed[line[66:]] = line[:64]
        names.append(line[66:].encode("utf-8"))
    if names != sorted(names):
        problems.append("run/SHA256SUMS: lines not sorted by path bytes")
    present = files_in(run) - {"SHA256SUMS"}
    for name in sorted(set(listed) | present):
        if name not in present and name in withheld:
            notes.append("run/%s: left out of the bundle (personal data); sealed as %s" % (name, listed[name]))
        elif name not in present:
            problems.append("run/%s: listed in SHA256SUMS but missing" % name)
        elif name not in listed:
            problems.append("run/%s: not listed in SHA256SUMS" % name)
        elif sha256_file(os.path.join(run, name)) != listed[name]:
            problems.append("run/%s: changed" % name)
    # The exports the run read (export-evidence --with-inputs): each the
    # bytes run/inputs.json recorded, so the population can be rebuilt.
    inputs_dir = os.path.join(root, "inputs")
    if bundle.get("inputs") or os.path.isdir(inputs_dir):
        with open(os.path.join(run, "inputs.json"), encoding="utf-8") as f:
            read = {r["path"]: r["sha256"] for r in json.load(f) if r.get("sha256")}
        held = files_in(inputs_dir)
        for rel in sorted(held | set(read)):
            if rel not in held:
                problems.append("inputs/%s: the run read it but it is missing" % rel)
            elif rel not in read:
                problems.append("inputs/%s: the run did not read it" % rel)
            elif sha256_file(os.path.join(inputs_dir, rel)) != read[rel]:
                problems.append("inputs/%s: not the file the run read" % rel)
    prev = GENESIS
    entries = []
    with open(os.path.join(root, "chain.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            e = json.loads(line)
            entries.append(e)
            text = "%s\n%d\n%s\n%s\n%s\n%s\n" % (
                e["prev"], e["seq"], e["kind"], e["id"], e["digest"], e["at"])
            if e["seq"] != i or e["prev"] != prev or sha256_text(text) != e["hash"]:
                problems.append("chain entry %d: broken" % i)
            prev = e["hash"]
    seal = sha256_file(os.path.join(run, "SHA256SUMS"))
    if not any(e["kind"] == "seal" and e["id"] == bundle["run"] and e["digest"] == seal
               for e in entries):
        problems.append("the chain has no seal of %s with this SHA256SUMS" % bundle["run"])
    found_problems, draw_lines = check_draw(run, entries)
    problems.extend(found_problems)
    notes.extend(draw_lines)
    covered = None
    if head is not None:
        found = [e for e in entries if len(head) >= 16 and e["hash"].startswith(head)]
        if not found:
            problems.append("the chain does not contain head %s" % head)
        else:
            covered = "head %s is entry %d of %d: entries 1 to %d are as that copy saw them" % (
                head[:16], found[0]["seq"], len(entries), found[0]["seq"])
    for p in problems:
        print(p)
    if problems:
        return 1
    for n in notes:
        print(n)
    if covered:
        print(covered)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
