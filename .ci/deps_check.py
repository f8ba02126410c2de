#!/usr/bin/env python3
"""Checks Cargo.lock against the RustSec advisory database (an offline snapshot) and every
dependency's license against .ci/deps-policy.toml.

- An advisory (vulnerability, or informational: unmaintained, unsound) that applies to a version
  in Cargo.lock FAILS the check when the crate is compiled for this platform (`cargo tree`,
  normal + build + dev edges), unless .ci/deps-policy.toml lists it with a reason; on a crate that
  is only in the lock file (an optional feature we do not enable, another platform) it is
  reported and does not fail. Withdrawn advisories are skipped.
- A license expression that no combination of the allowed licenses satisfies FAILS.
- A listed ignore that no longer matches anything is reported (to prune it).

The database: $FORMBRIDGE_ADVISORY_DB, else ../shared/advisory-db beside the checkout, else
/work/shared/advisory-db. Layout as upstream RustSec: crates/<crate>/RUSTSEC-*.md, each opening
with a ```toml block. No network. Exit 1 on a failure, with one line per problem.
"""
import json
import os
import re
import subprocess
import sys
import tomllib

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def advisory_db():
    candidates = [
        os.environ.get("FORMBRIDGE_ADVISORY_DB"),
        os.path.join(ROOT, "..", "shared", "advisory-db"),
        "/work/shared/advisory-db",
    ]
    for path in candidates:
        if path and os.path.isdir(os.path.join(path, "crates")):
            return os.path.normpath(path)
    sys.exit(
        "deps_check: no advisory database (set FORMBRIDGE_ADVISORY_DB to a RustSec checkout "
        "or snapshot with a crates/ folder)"
    )


# ---- versions and requirements (semver, as RustSec writes them) -----------------------------

def parse_version(text):
    """(major, minor, patch, prerelease) with a missing prerelease sorting after any."""
    core, _, pre = text.strip().partition("-")
    core = core.split("+")[0]
    parts = [int(p) for p in core.split(".")] + [0, 0, 0]
    return (parts[0], parts[1], parts[2], (1, "") if not pre else (0, pre))


def matches(version, requirement):
    """Whether `version` satisfies one RustSec requirement such as ">= 1.2.3, < 1.3" or "^0.7"."""
    for clause in requirement.split(","):
        clause = clause.strip()
        m = re.fullmatch(r"(>=|<=|>|<|=|\^|~)?\s*([0-9][0-9A-Za-z.+-]*)", clause)
        if not m:
            raise ValueError(f"cannot read requirement {requirement!r}")
        op, bound_text = m.group(1) or "^", m.group(2)
        bound = parse_version(bound_text)
        given = len(bound_text.split("-")[0].split("."))
        if op == ">=" and not version >= bound:
            return False
        if op == ">" and not version > bound:
            return False
        if op == "<=" and not version <= bound:
            return False
        if op == "<" and not version < bound:
            return False
        if op == "=" and version[:3] != bound[:3]:
            return False
        if op in ("^", "~"):
            if version < bound:
                return False
            # Upper bound: ^ keeps the leftmost non-zero part; ~ keeps major.minor (or major).
            if op == "^":
                if bound[0] > 0 or given == 1:
                    upper = (bound[0] + 1, 0, 0)
                elif bound[1] > 0 or given == 2:
                    upper = (0, bound[1] + 1, 0)
                else:
                    upper = (0, 0, bound[2] + 1)
            else:
                upper = (bound[0] + 1, 0, 0) if given == 1 else (bound[0], bound[1] + 1, 0)
            if version[:3] >= upper:
                return False
    return True


def affected(version_text, versions):
    version = parse_version(version_text)
    if any(matches(version, r) for r in versions.get("patched", [])):
        return False
    if any(matches(version, r) for r in versions.get("unaffected", [])):
        return False
    return True


def read_advisory(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"```toml\n(.*?)\n```", text, re.S)
    if not m:
        raise ValueError(f"{path}: no toml front matter")
    front = tomllib.loads(m.group(1))
    title = re.search(r"^# (.+)$", text[m.end():], re.M)
    front["title"] = title.group(1) if title else ""
    return front


# ---- licenses -------------------------------------------------------------------------------

def license_ok(expression, allowed):
    """Whether an SPDX expression can be satisfied by the allowed licenses (AND, OR, WITH,
    parentheses; the old `/` separator read as OR)."""
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.+-]+", expression.replace("/", " OR "))
    pos = 0

    def atom():
        nonlocal pos
        if tokens[pos] == "(":
            pos += 1
            value = disjunction()
            pos += 1  # ")"
            return value
        name = tokens[pos]
        pos += 1
        if pos < len(tokens) and tokens[pos] == "WITH":
            name = f"{name} WITH {tokens[pos + 1]}"
            pos += 2
            return name in allowed or name.split(" WITH ")[0] in allowed
        return name in allowed

    def conjunction():
        nonlocal pos
        value = atom()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            value = atom() and value
        return value

    def disjunction():
        nonlocal pos
        value = conjunction()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            value = conjunction() or value
        return value

    return disjunction()


# ---- the check ------------------------------------------------------------------------------

def compiled_packages():
    """(name, version) of every crate compiled for this platform: normal, build and dev edges."""
    out = subprocess.run(
        ["cargo", "tree", "--locked", "--workspace", "-e", "normal,build,dev",
         "--prefix", "none", "--format", "{p}"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    found = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("v"):
            found.add((parts[0], parts[1][1:]))
    return found


def check(db, compiled, quiet=False):
    """Prints the report for Cargo.lock against `db` (nothing when `quiet`); returns the number
    of problems."""
    with open(os.path.join(ROOT, ".ci", "deps-policy.toml"), "rb") as f:
        policy = tomllib.load(f)
    ignored = {i["id"]: i for i in policy.get("ignore", [])}
    for entry in ignored.values():
        if not entry.get("reason", "").strip():
            sys.exit(f"deps_check: ignore {entry['id']} has no reason")
    allowed = set(policy["licenses"]["allowed"])
    with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)

    problems, notes, used_ignores = [], [], set()
    checked = 0
    for package in lock.get("package", []):
        name, version = package["name"], package["version"]
        folder = os.path.join(db, "crates", name)
        if not os.path.isdir(folder) or package.get("source") is None:
            continue
        for file in sorted(os.listdir(folder)):
            if not file.endswith(".md"):
                continue
            advisory = read_advisory(os.path.join(folder, file))
            info = advisory["advisory"]
            checked += 1
            if info.get("withdrawn") or not affected(version, advisory.get("versions", {})):
                continue
            kind = info.get("informational") or "vulnerability"
            line = f"{info['id']} {name} {version} ({kind}): {advisory['title']}"
            if info["id"] in ignored:
                used_ignores.add(info["id"])
                notes.append(f"ignored  {line} — {ignored[info['id']]['reason'].split('.')[0]}")
            elif (name, version) in compiled:
                problems.append(f"ADVISORY {line} — compiled; upgrade, or list it in .ci/deps-policy.toml with a reason")
            else:
                notes.append(f"lock-only {line} (not compiled for this platform)")

    metadata = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked",
         "--filter-platform", "x86_64-unknown-linux-gnu"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout)
    licenses = 0
    for package in metadata["packages"]:
        expression = package.get("license")
        if package.get("source") is None:
            continue  # our own crates
        licenses += 1
        if not expression:
            problems.append(f"LICENSE  {package['name']} {package['version']}: no SPDX license (license-file: {package.get('license_file')})")
        elif not license_ok(expression, allowed):
            problems.append(f"LICENSE  {package['name']} {package['version']}: `{expression}` is not among the allowed licenses of .ci/deps-policy.toml")

    for stale in sorted(set(ignored) - used_ignores):
        notes.append(f"stale ignore {stale}: no longer matches Cargo.lock; remove it from .ci/deps-policy.toml")

    if quiet:
        return len(problems)
    for note in notes:
        print(note)
    for problem in problems:
        print(problem)
    print(
        f"deps_check: {len(lock.get('package', []))} crates in Cargo.lock ({len(compiled)} compiled), "
        f"{checked} advisories read from {db}, {licenses} licenses checked: "
        + ("FAILED" if problems else "OK")
    )
    return len(problems)


def self_test(compiled):
    """Proves the check fails on a new advisory for a compiled crate and passes once the
    advisory's patched range covers the locked version (a throwaway database)."""
    import tempfile
    name, version = sorted(c for c in compiled if c[0] == "serde")[0]
    with tempfile.TemporaryDirectory() as db:
        os.makedirs(os.path.join(db, "crates", name))
        path = os.path.join(db, "crates", name, "RUSTSEC-9999-0001.md")
        def write(patched):
            with open(path, "w", encoding="utf-8") as f:
                f.write(f'```toml\n[advisory]\nid = "RUSTSEC-9999-0001"\npackage = "{name}"\n'
                        f'date = "2026-12-05"\n\n[versions]\npatched = {json.dumps(patched)}\n```\n\n'
                        f'# Self-test advisory\n')
        write([f"> {version}"])
        failing = check(db, compiled, quiet=True)
        write([f">= {version}"])
        passing = check(db, compiled, quiet=True)
    assert failing >= 1, "a new advisory on a compiled crate must fail the check"
    assert passing == failing - 1, "a patched version must pass"
    assert matches(parse_version("1.2.3"), ">= 1.2, < 1.3") and not matches(parse_version("1.3.0"), ">= 1.2, < 1.3")
    assert matches(parse_version("0.7.9"), "^0.7.6") and not matches(parse_version("0.8.0"), "^0.7.6")
    assert license_ok("(MIT OR Apache-2.0) AND Unicode-3.0", {"MIT", "Unicode-3.0"})
    assert not license_ok("GPL-3.0-only OR AGPL-3.0", {"MIT"})
    print(f"deps_check self-test: a new advisory on {name} {version} (compiled) fails the check; "
          "once patched, it passes")


if __name__ == "__main__":
    compiled = compiled_packages()
    if "--self-test" in sys.argv:
        self_test(compiled)
    sys.exit(1 if check(advisory_db(), compiled) else 0)
