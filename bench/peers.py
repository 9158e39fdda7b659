"""Peers: NCT01844063's computable criteria over seeded synthetic flat patients, five ways.

(a) this engine: the trial compiled from rules/trials/NCT01844063.elig, fed `engine.flat.FlatFacts`;
(b) hand-written Python for the same logic;
(c) rule-engine, (d) JSON Logic (panzi-json-logic), (e) cel-python, each given the same logic
    in its own expression language, one program per criterion (and per `when`), driven in
    file order the way the engine's generated `verdict` and `statuses` go;
(a′) the same trial through the engine's flat back end, engine/flat_compiler.py.

Every peer must agree with (a) on every patient it evaluates (asserted), for the verdict and for
the 15 per-criterion statuses (5 of them manual). Three-valued logic: a missing value (None) is
*unknown*. rule-engine and JSON Logic have no unknown, so there it is the number 1 between
0 = not met and 2 = met: Kleene's `and` is then `min`, `or` is `max` and `not` is `2 - x`, which
both have built in (`$min`/`$max`, `min`/`max`), and each leaf tests for null first. CEL has a
three-valued logic of its own: `&&` and `||` absorb an error commutatively, so an error (reading
a missing key) is unknown. So every peer expresses the full three-valued logic and is compared
on every patient it runs, not only on a complete-data subset.

Data: flat values as `engine.flat` reads them (lab values in canonical units, all dated at the
screening date except the earlier bilirubin, whose age in days the 7-day window checks; MELD
given as a recorded score; code sets as true/false, None read as no record). The slow peers
run the first 20 % (rule-engine, JSON Logic) or 2 % (cel-python) of the patients, and their
rates are per patient on that sample (said in the table).

Run: .venv/bin/python bench/peers.py [--patients N] [--quick]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, best_rate, machine, save, table  # noqa: E402

import engine  # noqa: E402
from engine.flat import FlatFacts  # noqa: E402
from engine.rules import load_rules  # noqa: E402

AS_OF = "2026-11-01"
TRIAL = "NCT01844063"
FIELDS = ("age", "sex", "liver_failure", "hcg", "hbsag", "bilirubin_total", "bilirubin_total__prev",
          "bilirubin_total__prev_days", "inr", "pta", "meld", "hepatocellular_carcinoma", "malignancy", "pregnancy",
          "pregnant", "breastfeeding", "autoimmune_hepatitis", "alcoholic_liver_disease", "drug_induced_liver_injury")
FLAGS = ("liver_failure", "hepatocellular_carcinoma", "malignancy", "pregnancy", "autoimmune_hepatitis",
         "alcoholic_liver_disease", "drug_induced_liver_injury")


# ---- data ----------------------------------------------------------------------------------

def make_patients(n: int, seed: int = 20261101) -> list[dict]:
    """Seeded synthetic patients, mostly HBV-related liver failure, with some of every gap."""
    rng = random.Random(seed)
    r = rng.random
    out = []
    for i in range(n):
        p = dict.fromkeys(FIELDS)
        p["id"] = f"p{i}"
        if r() > 0.04:
            p["age"] = rng.randint(18, 65) if r() < 0.85 else rng.randint(8, 90)
        sex = r()
        p["sex"] = "female" if sex < 0.45 else "male" if sex < 0.95 else None if sex < 0.98 else "unknown"
        for flag in FLAGS:
            x = r()
            p[flag] = None if x < 0.05 else (x > 0.97) if flag != "liver_failure" else (x < 0.9)
        x = r()
        p["hbsag"] = None if x < 0.05 else "positive" if x < 0.88 else "negative" if x < 0.98 else "indeterminate"
        if p["sex"] == "female" or r() < 0.05:
            x = r()
            p["hcg"] = None if x < 0.2 else "negative" if x < 0.93 else "positive" if x < 0.98 else "indeterminate"
        if r() > 0.05:
            p["bilirubin_total"] = rng.uniform(40.0, 520.0)
            if r() < 0.7:
                p["bilirubin_total__prev"] = rng.uniform(20.0, 480.0)
                p["bilirubin_total__prev_days"] = rng.randint(0, 9)
        if r() > 0.06:
            p["inr"] = rng.uniform(0.9, 3.5)
        if r() > 0.3:
            p["pta"] = rng.uniform(8.0, 90.0)
        if r() > 0.08:
            p["meld"] = rng.randint(8, 40)
        for fact in ("pregnant", "breastfeeding"):
            x = r()
            p[fact] = None if x < 0.6 else x > 0.98
        out.append(p)
    return out


# ---- (b) hand-written Python ------------------------------------------------------------------

MET, NOT_MET, UNKNOWN, NA, MANUAL = "met", "not_met", "unknown", "not_applicable", "manual"


def _qual(value, wanted):
    if value is None or value == "indeterminate":
        return None
    return value == wanted


def _rise(p):
    b, prev, days = p["bilirubin_total"], p["bilirubin_total__prev"], p["bilirubin_total__prev_days"]
    if b is None or prev is None or days is None or not 1 <= days <= 7:
        return None
    return (b - prev) / days >= 17.1


def _or(a, b):
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _not(a):
    return None if a is None else not a


def _and(a, b):
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _pregnant(p):
    """has pregnancy or hcg is positive or (pregnant and not hcg is negative)"""
    if p["pregnancy"]:
        return True
    hcg = p["hcg"]
    return _or(_qual(hcg, "positive"), _and(p["pregnant"], _not(_qual(hcg, "negative"))))


def _criteria(p):
    """(when, body) per computable criterion, in file order: I1 I2 I3 I5 I6 I7 I8 E1 E3 E6."""
    age, sex = p["age"], p["sex"]
    female = None if sex is None or sex == "unknown" else sex == "female"
    b, inr, pta, meld = p["bilirubin_total"], p["inr"], p["pta"], p["meld"]
    i1 = None if age is None else 18 <= age <= 65
    i2 = bool(p["liver_failure"])
    wocbp = _and(female, None if age is None else 12 <= age <= 55)
    i3 = _qual(p["hcg"], "negative")
    i5 = _qual(p["hbsag"], "positive")
    i6 = _or(None if b is None else b >= 171, _rise(p))
    i7 = _or(None if inr is None else inr >= 1.5, None if pta is None else 20 < pta <= 40)
    i8 = None if meld is None else 17 <= meld <= 30
    e1 = bool(p["hepatocellular_carcinoma"] or p["malignancy"])
    e3 = _or(_pregnant(p), p["breastfeeding"])
    e6 = bool(p["autoimmune_hepatitis"] or p["alcoholic_liver_disease"] or p["drug_induced_liver_injury"])
    return i1, i2, wocbp, i3, i5, i6, i7, i8, e1, female, e3, e6


def _word(v):
    return MET if v is True else NOT_MET if v is False else UNKNOWN


def _conditional(when, body):
    return NA if when is False else UNKNOWN if when is None else _word(body)


def hand_statuses(p):
    i1, i2, wocbp, i3, i5, i6, i7, i8, e1, female, e3, e6 = _criteria(p)
    return [_word(i1), _word(i2), _conditional(wocbp, i3), MANUAL, _word(i5), _word(i6), _word(i7), _word(i8),
            _word(e1), MANUAL, _conditional(female, e3), MANUAL, MANUAL, _word(e6), MANUAL]


def hand_verdict(p):
    """Stops at the first criterion that rules the patient out, as a person would write it."""
    unknown = False
    age = p["age"]
    if age is None:
        unknown = True
    elif not 18 <= age <= 65:
        return "ineligible"
    if not p["liver_failure"]:
        return "ineligible"
    if p["hepatocellular_carcinoma"] or p["malignancy"]:
        return "ineligible"
    if p["autoimmune_hepatitis"] or p["alcoholic_liver_disease"] or p["drug_induced_liver_injury"]:
        return "ineligible"
    i5 = _qual(p["hbsag"], "positive")
    if i5 is False:
        return "ineligible"
    b, inr, pta, meld = p["bilirubin_total"], p["inr"], p["pta"], p["meld"]
    i6 = _or(None if b is None else b >= 171, _rise(p))
    i7 = _or(None if inr is None else inr >= 1.5, None if pta is None else 20 < pta <= 40)
    i8 = None if meld is None else 17 <= meld <= 30
    if i6 is False or i7 is False or i8 is False:
        return "ineligible"
    unknown = unknown or i5 is None or i6 is None or i7 is None or i8 is None
    sex = p["sex"]
    female = None if sex is None or sex == "unknown" else sex == "female"
    wocbp = _and(female, None if age is None else 12 <= age <= 55)
    if wocbp is None:
        unknown = True
    elif wocbp:
        i3 = _qual(p["hcg"], "negative")
        if i3 is False:
            return "ineligible"
        unknown = unknown or i3 is None
    if female is None:
        unknown = True
    elif female:
        e3 = _or(_pregnant(p), p["breastfeeding"])
        if e3 is True:
            return "ineligible"
        unknown = unknown or e3 is None
    return "possibly_eligible" if unknown else "eligible"


# ---- the logic once, as a small tree, written out in each expression language ----------------
# Leaves: ("between", field, lo, hi), ("cmp", field, op, t), ("range", field, lo_op, lo, hi_op, hi),
# ("qual", field, word), ("flag", field), ("fact", field), ("sex", word), ("rise",).
# Nodes: ("and", ...), ("or", ...), ("not", x). Criteria: (key, kind, when, body); body None = manual.

AGE_18_65 = ("between", "age", 18, 65)
FEMALE = ("sex", "female")
WOCBP = ("and", FEMALE, ("between", "age", 12, 55))
CURRENTLY_PREGNANT = ("or", ("flag", "pregnancy"), ("qual", "hcg", "positive"),
                      ("and", ("fact", "pregnant"), ("not", ("qual", "hcg", "negative"))))
CRITERIA = [
    ("I1", "inclusion", None, AGE_18_65),
    ("I2", "inclusion", None, ("flag", "liver_failure")),
    ("I3", "inclusion", WOCBP, ("qual", "hcg", "negative")),
    ("I4", "inclusion", None, None),
    ("I5", "inclusion", None, ("qual", "hbsag", "positive")),
    ("I6", "inclusion", None, ("or", ("cmp", "bilirubin_total", ">=", 171.0), ("rise",))),
    ("I7", "inclusion", None, ("or", ("cmp", "inr", ">=", 1.5), ("range", "pta", ">", 20.0, "<=", 40.0))),
    ("I8", "inclusion", None, ("between", "meld", 17, 30)),
    ("E1", "exclusion", None, ("or", ("flag", "hepatocellular_carcinoma"), ("flag", "malignancy"))),
    ("E2", "exclusion", None, None),
    ("E3", "exclusion", FEMALE, ("or", CURRENTLY_PREGNANT, ("fact", "breastfeeding"))),
    ("E4", "exclusion", None, None),
    ("E5", "exclusion", None, None),
    ("E6", "exclusion", None, ("or", ("flag", "autoimmune_hepatitis"), ("flag", "alcoholic_liver_disease"),
                               ("flag", "drug_induced_liver_injury"))),
    ("E7", "exclusion", None, None),
]
TRI_WORD = (NOT_MET, UNKNOWN, MET)  # the 0, 1, 2 encoding
VERDICT_CODES = ("ineligible", "possibly_eligible", "eligible")


def driver(compile_expr, evaluate):
    """Verdict and statuses from per-criterion programs, as a rules-engine user would write them.

    `compile_expr(tree)` builds a program once; `evaluate(program, ctx)` returns 0, 1 or 2;
    `ctx` is what the peer evaluates against (built once per patient by `prepare`). The verdict
    goes through the criteria in file order and stops at the first that rules the patient out,
    as the engine's generated `verdict` does.
    """
    programs = [(kind, None if when is None else compile_expr(when), None if body is None else compile_expr(body))
                for _key, kind, when, body in CRITERIA]
    computable = [(kind == "inclusion", w, b) for kind, w, b in programs if b is not None]

    def verdict(ctx):
        unknown = False
        for inclusion, w, b in computable:
            if w is not None:
                wv = evaluate(w, ctx)
                if wv == 0:
                    continue
                if wv == 1:
                    unknown = True
                    continue
            bv = evaluate(b, ctx)
            if bv == 1:
                unknown = True
            elif (bv == 0) is inclusion:
                return "ineligible"
        return "possibly_eligible" if unknown else "eligible"

    def statuses(ctx):
        out = []
        for _kind, w, b in programs:
            if b is None:
                out.append(MANUAL)
                continue
            if w is not None:
                wv = evaluate(w, ctx)
                if wv != 2:
                    out.append(NA if wv == 0 else UNKNOWN)
                    continue
            out.append(TRI_WORD[evaluate(b, ctx)])
        return out

    return verdict, statuses


class Dialect:
    """Writes a criterion tree in one language; tri values are the integers 0, 1, 2."""

    def expr(self, node) -> object:
        return getattr(self, "n_" + node[0])(*node[1:])

    def n_between(self, f, lo, hi):
        return self.n_range(f, ">=", lo, "<=", hi)

    def n_cmp(self, f, op, t):
        return self.tri_test(f, self.compare(self.var(f), op, self.num(t)))

    def n_range(self, f, lo_op, lo, hi_op, hi):
        flipped = {">": "<", ">=": "<="}[lo_op]
        test = self.both(self.compare(self.num(lo), flipped, self.var(f)), self.compare(self.var(f), hi_op, self.num(hi)))
        return self.tri_test(f, test)

    def n_qual(self, f, word):
        return self.cond(self.either(self.is_null(f), self.compare(self.var(f), "==", self.text("indeterminate"))),
                         self.const(1), self.cond(self.compare(self.var(f), "==", self.text(word)), self.const(2),
                                                  self.const(0)))

    def n_flag(self, f):
        return self.cond(self.compare(self.var(f), "==", self.true()), self.const(2), self.const(0))

    def n_fact(self, f):
        return self.cond(self.is_null(f), self.const(1), self.cond(self.compare(self.var(f), "==", self.true()),
                                                                   self.const(2), self.const(0)))

    def n_sex(self, word):
        unknown = self.either(self.is_null("sex"), self.compare(self.var("sex"), "==", self.text("unknown")))
        return self.cond(unknown, self.const(1), self.cond(self.compare(self.var("sex"), "==", self.text(word)),
                                                           self.const(2), self.const(0)))

    def n_rise(self):
        b, p, d = "bilirubin_total", "bilirubin_total__prev", "bilirubin_total__prev_days"
        missing = self.either(self.either(self.is_null(b), self.is_null(p)), self.is_null(d))
        stale = self.either(self.compare(self.var(d), "<", self.num(1)), self.compare(self.var(d), ">", self.num(7)))
        rate = self.compare(self.div(self.sub(self.var(b), self.var(p)), self.var(d)), ">=", self.num(17.1))
        return self.cond(missing, self.const(1), self.cond(stale, self.const(1), self.cond(rate, self.const(2),
                                                                                          self.const(0))))

    def tri_test(self, f, test):
        return self.cond(self.is_null(f), self.const(1), self.cond(test, self.const(2), self.const(0)))


class RuleEngineDialect(Dialect):
    def var(self, f): return f
    def num(self, x): return repr(x)
    def text(self, s): return f"'{s}'"
    def true(self): return "true"
    def const(self, k): return str(k)
    def is_null(self, f): return f"{f} == null"
    def compare(self, a, op, b): return f"({a} {op} {b})"
    def both(self, a, b): return f"({a} and {b})"
    def either(self, a, b): return f"({a} or {b})"
    def cond(self, c, a, b): return f"({c} ? {a} : {b})"
    def sub(self, a, b): return f"({a} - {b})"
    def div(self, a, b): return f"({a} / {b})"
    def n_and(self, *xs): return "$min([" + ", ".join(self.expr(x) for x in xs) + "])"
    def n_or(self, *xs): return "$max([" + ", ".join(self.expr(x) for x in xs) + "])"
    def n_not(self, x): return f"(2 - {self.expr(x)})"


class JsonLogicDialect(Dialect):
    def var(self, f): return {"var": f}
    def num(self, x): return x
    def text(self, s): return s
    def true(self): return True
    def const(self, k): return k
    def is_null(self, f): return {"===": [{"var": f}, None]}
    def compare(self, a, op, b): return {"===" if op == "==" else op: [a, b]}
    def both(self, a, b): return {"and": [a, b]}
    def either(self, a, b): return {"or": [a, b]}
    def cond(self, c, a, b): return {"if": [c, a, b]}
    def sub(self, a, b): return {"-": [a, b]}
    def div(self, a, b): return {"/": [a, b]}
    def n_and(self, *xs): return {"min": [self.expr(x) for x in xs]}
    def n_or(self, *xs): return {"max": [self.expr(x) for x in xs]}
    def n_not(self, x): return {"-": [2, self.expr(x)]}


class CelDialect:
    """CEL has a three-valued logic of its own: `&&` and `||` absorb an error commutatively
    (`false && error` is false, `true || error` is true), so an error is Kleene's unknown. The
    patient is a map `p` without its missing keys; reading one (`p.age`) is an error, i.e.
    unknown. `p.unknown_` (never present) stands for an explicit unknown."""

    U = "p.unknown_"

    def expr(self, node) -> str:
        return getattr(self, "n_" + node[0])(*node[1:])

    def n_between(self, f, lo, hi): return f"(p.{f} >= {lo} && p.{f} <= {hi})"
    def n_cmp(self, f, op, t): return f"(p.{f} {op} {t!r})"
    def n_range(self, f, lo_op, lo, hi_op, hi): return f"(p.{f} {lo_op} {lo!r} && p.{f} {hi_op} {hi!r})"
    def n_qual(self, f, word): return f'(p.{f} == "indeterminate" ? {self.U} : p.{f} == "{word}")'
    def n_flag(self, f): return f"(has(p.{f}) && p.{f})"
    def n_fact(self, f): return f"p.{f}"
    def n_sex(self, word): return f'(p.sex == "unknown" ? {self.U} : p.sex == "{word}")'

    def n_rise(self):
        b, prev, d = "p.bilirubin_total", "p.bilirubin_total__prev", "p.bilirubin_total__prev_days"
        return f"(({d} >= 1 && {d} <= 7) ? ({b} - {prev}) / double({d}) >= 17.1 : {self.U})"

    def n_and(self, *xs): return "(" + " && ".join(self.expr(x) for x in xs) + ")"
    def n_or(self, *xs): return "(" + " || ".join(self.expr(x) for x in xs) + ")"
    def n_not(self, x): return f"!{self.expr(x)}"


# ---- peers as callables: (verdict_fn, statuses_fn, prepare) -----------------------------------

def _plain(p):
    return p


def engine_peer(trial):
    verdict, statuses = trial.verdict, trial.statuses
    return (lambda p: verdict(FlatFacts(p, AS_OF))), (lambda p: statuses(FlatFacts(p, AS_OF))), _plain


def rule_engine_peer():
    import rule_engine
    d = RuleEngineDialect()
    v, s = driver(lambda tree: rule_engine.Rule(d.expr(tree)).evaluate, lambda prog, ctx: int(prog(ctx)))
    return v, s, _plain


def json_logic_peer():
    from json_logic import jsonLogic
    d = JsonLogicDialect()
    v, s = driver(d.expr, lambda prog, ctx: int(jsonLogic(prog, ctx)))
    return v, s, _plain


def cel_peer():
    import celpy
    from celpy.evaluation import CELEvalError
    d = CelDialect()
    env = celpy.Environment()

    def evaluate(prog, ctx):
        try:
            return 2 if prog.evaluate(ctx) else 0
        except CELEvalError:
            return 1

    v, s = driver(lambda tree: env.program(env.compile(d.expr(tree))), evaluate)
    to_cel = celpy.json_to_cel

    def prepare(p):  # CEL's own types, missing keys left out
        return {"p": to_cel({k: x for k, x in p.items() if x is not None})}

    return v, s, prepare


PEERS = {
    "rule-engine": ("rule_engine", rule_engine_peer, 0.2),
    "JSON Logic": ("json_logic", json_logic_peer, 0.2),
    "cel-python": ("celpy", cel_peer, 0.02),
}


def _available(module: str) -> bool:
    import importlib
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def run(n: int, repeats: int, quick: bool, prototype: bool = True) -> dict:
    print(f"peers: {TRIAL} over {n:,} synthetic flat patients, as of {AS_OF}; {machine()}")
    trial = load_rules(ROOT / "rules").trials[TRIAL]
    patients = make_patients(n)
    engine_v, engine_s, _ = engine_peer(trial)
    start = time.perf_counter()
    want_v = [engine_v(p) for p in patients]
    want_s = [engine_s(p) for p in patients]
    print(f"reference answers from (a) in {time.perf_counter() - start:.2f} s; verdicts: "
          + ", ".join(f"{k} {want_v.count(k):,}" for k in VERDICT_CODES))

    peers = {"(a) elig compiled": (engine_v, engine_s, _plain, 1.0),
             "(b) hand-written Python": (hand_verdict, hand_statuses, _plain, 1.0)}
    if prototype:
        from engine.flat_compiler import compile_flat
        program = compile_flat(trial, engine._as_date(AS_OF), columns=FIELDS + ("id",))
        pv, ps = program.verdict, program.statuses
        peers["(a′) elig flat back end (engine/flat_compiler.py)"] = (pv, ps, _plain, 1.0)
    skipped = []
    for name, (module, build, share) in PEERS.items():
        if _available(module):
            v, s, prepare = build()
            peers[f"({'cde'[list(PEERS).index(name)]}) {name}"] = (v, s, prepare, share)
        else:
            skipped.append(name)
            print(f"({'cde'[list(PEERS).index(name)]}) {name}: not installed (pip install '.[bench]'), skipped")

    rows, results = [], {}
    for name, (v, s, prepare, share) in peers.items():
        m = n if share >= 1 else max(20 if quick else 200, int(n * share))
        sample = patients[:m]
        got_v = [v(prepare(p)) for p in sample]
        got_s = [s(prepare(p)) for p in sample]
        for i in range(m):  # agreement, patient by patient
            assert got_v[i] == want_v[i], f"{name} verdict differs on {sample[i]}: {got_v[i]} != {want_v[i]}"
            assert got_s[i] == want_s[i], f"{name} statuses differ on {sample[i]}: {got_s[i]} != {want_s[i]}"
        reps = repeats if m == n else 1
        rate_v = best_rate(lambda: [v(prepare(p)) for p in sample], m, reps)
        rate_s = best_rate(lambda: [s(prepare(p)) for p in sample], m, reps)
        results[name] = {"patients": m, "verdict_per_s": rate_v, "statuses_per_s": rate_s}
    base = results["(a) elig compiled"]
    for name, r in results.items():
        note = "" if r["patients"] == n else f" (on {r['patients']:,}, extrapolated)"
        rows.append([name + note, r["verdict_per_s"], r["verdict_per_s"] / base["verdict_per_s"],
                     r["statuses_per_s"], r["statuses_per_s"] / base["statuses_per_s"]])
    print(f"all peers agree with (a) on every patient they evaluated (verdict and {len(CRITERIA)} statuses)")
    print(table(["peer", "verdict pat/s", "× (a)", "statuses pat/s", "× (a)"], rows))
    hand = results["(b) hand-written Python"]
    for name, r in results.items():
        if name.startswith("(a"):
            print(f"{name} / (b): verdict {r['verdict_per_s'] / hand['verdict_per_s']:.2f}×, "
                  f"statuses {r['statuses_per_s'] / hand['statuses_per_s']:.2f}× (≥ 1: as fast as hand-written)")
    return {"patients": n, "results": results, "skipped": skipped}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: 300 patients, one repeat")
    ap.add_argument("--no-prototype", action="store_true", help="leave out (a′), engine/flat_compiler.py")
    args = ap.parse_args(argv)
    n, repeats = (300, 1) if args.quick else (args.patients, args.repeats)
    data = run(n, repeats, args.quick, not args.no_prototype)
    if not args.quick:
        save("peers", data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
