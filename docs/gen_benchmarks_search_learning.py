"""The "does the search learn?" section of docs/benchmarks.md, from benchmarks/results/search_learning.json.

Imported by docs/gen_benchmarks.py; ``section(data)`` returns the section's body.  Written by
``benchmarks/bench_search_learning.py`` (issue 16, part 2).
"""

from __future__ import annotations

from typing import Any

from benchfmt import get, isnum, num, table

TITLE = "## Mixed-precision search at equal certification counts: does DDPG learn? (`results/search_learning.json`)\n"
SCRIPT_ROW = ("| `bench_search_learning.py` | DDPG against greedy and random search at a binding BitOps budget with "
              "equal certification counts, 3 seeds: paired test certificates, reward curves, origin of every pick | "
              "`--seeds`, `--episodes`, `--test-images`, `--budget`, `--work` |")
REPRODUCE = "python benchmarks/bench_search_learning.py"


def _ms(d: Any, fmt: str = ".4f") -> str:
    """``mean +- std`` of a {mean, std} record."""
    if not isinstance(d, dict) or not isnum(d.get("mean")):
        return "n/a"
    return f"{num(d['mean'], fmt)} +- {num(d.get('std'), fmt)}"


def _origin(p: dict) -> str:
    if "episode" in p:
        where = "warm-up" if p.get("from_warmup") else "agent"
        return f"episode {p['episode']} ({where}), certification {p.get('certification')}"
    return f"certification {p.get('certification')} ({p.get('phase')})"


def section(d: dict) -> str:
    s, b, c, cmp = d["settings"], d["budget"], d["equal_counts"], d["comparison"]
    key = "cert_acc@0.25"
    binding = "binds" if b.get("binding") else "DOES NOT BIND"
    parts = [f"""Device: {get(d, 'machine', 'device', default='not recorded')}; wall {num(d.get('total_wall_s'), '.0f')} s
(search {num(d.get('search_wall_s'), '.0f')} s, test {num(d.get('test_wall_s'), '.0f')} s), CPU
{num(d.get('total_cpu_s'), '.0f')} s; load average at start {get(d, 'machine', 'load_average_at_start', default='n/a')}.
{d.get('model', '')}; {d.get('data', '')}. Budget {num(b.get('fraction'), 'g')} of the float BitOps, which
{binding} (uniform 8 bits: {num(b.get('uniform_8_bit_fraction'), '.4f')}; the widest uniform policy that fits:
{b.get('uniform_bits_that_fit')} bits). Seeds {s.get('seeds')}; DDPG {s.get('episodes')} episodes
({s.get('warmup')} warm-up); final race of {s.get('race')} with n = {s.get('final_n')}; reward on
{s.get('reward_images')} images with n_q = {s.get('reward_n')}; test on {s.get('test_images')} other images with
N = {s.get('test_n')} (largest certifiable radius {num(d.get('max_certifiable_radius_test'), '.3f')}).
{d.get('certification_note', '')}.

Target: {cmp.get('statement', 'not recorded')}: **{cmp.get('result', 'n/a')}**. {cmp.get('verdict', '')}
Certification counts equal for every seed: **{'yes' if c.get('equal') else 'NO'}**.
"""]
    rows = []
    for r in d["runs"]:
        ci = get(r, "test_ci", "ci95@0.25")
        ci_text = f" [{num(ci[0], '.3f')}, {num(ci[1], '.3f')}]" if isinstance(ci, list) else ""
        rows.append([r.get("seed"), r.get("method"), r.get("bits"), num(100 * r["bitops_fraction"], ".3f"),
                     num(r.get("search_reward"), ".4f"), num(r.get("final_reward"), ".4f"),
                     num(get(r, "test", key), ".3f") + ci_text, num(get(r, "test", "acr"), ".3f"),
                     f"{get(r, 'certifications', 'search')} + {get(r, 'certifications', 'race')}",
                     _origin(r.get("pick", {}))])
    ft, ut = d.get("float_test", {}), d.get("uniform_test", {})
    rows.append(["-", "float32", 32, 100, "-", "-", num(ft.get(key), ".3f"), num(ft.get("acr"), ".3f"), "-", "-"])
    uf = ut.get("bitops_fraction")
    rows.append(["-", "uniform (reference)", ut.get("bits"), num(100 * uf, ".3f") if isnum(uf) else "n/a",
                 "-", "-", num(ut.get(key), ".3f"), num(ut.get("acr"), ".3f"), "-", "-"])
    parts.append(table(["seed", "method", "bits", "BitOps %", "search reward", "race reward", "test CA@0.25 [95%]",
                        "test ACR", "certifications (search + race)", "pick first made at"], rows) + "\n")
    pairs = cmp.get("paired@0.25", {})
    prow = [[p.get("seed"), m, p.get("only_ddpg"), p.get("only_other"), num(p.get("mcnemar_exact_p"), ".3f")]
            for m, ps in pairs.items() for p in ps]
    parts.append("Paired on the same test images and noise (radius 0.25), per seed:\n\n"
                 + table(["seed", "DDPG against", "certified by DDPG only", "by the other only", "McNemar exact p"],
                         prow) + "\n")
    lr, pk = d.get("learning", {}), d.get("picks", {})
    best = lr.get("best_after_length", {})
    prop = lr.get("proposed_mean_reward", {})
    fw = pk.get("ddpg_from_warmup", {})
    parts.append(f"""Learning (search reward on the reward images; mean +- std over seeds): best reward after
{lr.get('length')} certifications: DDPG {_ms(best.get('ddpg'))}, random {_ms(best.get('random'))}, greedy
{_ms(best.get('greedy'))}. Mean reward of the certified policies: DDPG warm-up {_ms(prop.get('ddpg_warmup'))},
DDPG agent (after warm-up) {_ms(prop.get('ddpg_agent'))}, random {_ms(prop.get('random'))}; DDPG's episodes after
warm-up, repeats included, {_ms(lr.get('ddpg_episode_reward_after_warmup'))}. The agent's proposals
{'are' if lr.get('ddpg_agent_proposals_above_random') else 'are NOT'} better on average than random search's; its
best reward {'is' if lr.get('ddpg_best_above_random') else 'is NOT'} above random search's at equal counts.
DDPG final picks first made in a random warm-up episode: {fw.get('from_warmup', 'n/a')} of {fw.get('picks', 'n/a')}
(share {num(fw.get('share'), '.2f')}).
""")
    if d.get("plot"):
        parts.append(f"![Search reward against certifications, mean and min-max over seeds](../{d['plot']})\n")
    return "\n".join(parts)
