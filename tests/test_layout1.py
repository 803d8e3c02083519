"""The Megatron flags an uneven plan emits describe the layout the engine priced (perf/memory.first_last_layers,
one formula for both), a stated layout is emitted as stated, and a layout the flags cannot express is one line
naming the field (exit 2) where the stack has no --pipeline-model-parallel-layout."""
from conftest import run_main

_RUN = """
name: layout
model: MODEL
system: dgx-h100
chips: CHIPS
framework: FW
training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512, precision: bf16}
plan: {tp: 1, pp: PP, micro_batch: 1, recompute: full PLAN}
"""


def _write(tmp_path, model, pp, chips, fw, plan=""):
    p = tmp_path / "run.yaml"
    p.write_text(_RUN.replace("MODEL", model).replace("CHIPS", str(chips)).replace("FW", fw)
                 .replace("PP", str(pp)).replace("PLAN", plan))
    return p


def test_32_layers_on_pp_25_emit_the_first_last_layout():
    """Llama 3 8B, 32 layers on pp 25 under a first/last stack: middle ranks k = floor(32 / 25) = 1 (23 of them),
    the first and last share r = 32 - 23 = 9: 5 and 4 (slowest 5; k = 2 would leave 32 - 46 < 0). The emitter's
    own split refused this plan with a plan.vpp error."""
    from trainsim.emit import stage_split
    assert stage_split(32, 25) == (5, 1, 4)


def test_61_layers_on_pp_6_emit_the_engines_layout():
    """61 layers on pp 6: k = 10 leaves 61 - 40 = 21 -> 11 / 10 (slowest 11); k = 11 leaves 17 -> 9 / 8 but
    slowest 11 too; the engine keeps floor (the first with the smaller slowest, ties to floor): (11, 10, 10). The
    emitter wrote (9, 11, 8) before."""
    from trainsim.emit import stage_split
    assert stage_split(61, 6) == (11, 10, 10)


def test_emit_megatron_writes_the_priced_layout(tmp_path, capsys):
    run = _write(tmp_path, "llama-3.1-8b", 25, 200, "megatron-core-2024")
    code, out, err = run_main(capsys, "plan", run, "--emit", "megatron")
    assert code == 0, err
    assert "--decoder-first-pipeline-num-layers 5\n" in out or "--decoder-first-pipeline-num-layers 5 " in out
    assert "--decoder-last-pipeline-num-layers 4" in out


def test_emit_megatron_writes_a_stated_layout(tmp_path, capsys):
    run = _write(tmp_path, "llama-3.1-8b", 25, 200, "megatron-core-2024",
                 ", first_stage_layers: 3, last_stage_layers: 6")
    code, out, err = run_main(capsys, "plan", run, "--emit", "megatron")
    assert code == 0, err
    assert "--decoder-first-pipeline-num-layers 3" in out and "--decoder-last-pipeline-num-layers 6" in out


def test_emit_writes_a_layout_the_first_last_flags_cannot_express(tmp_path, capsys):
    """Under a stack taking any layout the engine priced ceil(32 / 25) = 2 layers per rank; the first/last flags
    give at best 5 on the first rank, so --emit megatron refused the plan (plan.pp, exit 2). Megatron-Core 0.13 on
    places it with --pipeline-model-parallel-layout (qa25): 25 stages, 7 of them with 2 layers, 18 with 1 (7 x 2 +
    18 = 32), none above the 2 priced."""
    run = _write(tmp_path, "llama-3.1-8b", 25, 200, "megatron-bridge-2026")
    code, out, err = run_main(capsys, "plan", run, "--emit", "megatron")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("--pipeline-model-parallel-layout"))
    stages = line.split('"')[1].split("|")
    assert len(stages) == 25 and sorted(2 if "t*2" in st else st.count("t") for st in stages) == [1] * 18 + [2] * 7


def test_emit_61_layers_on_pp_6_write_the_engines_first_and_last(tmp_path, capsys):
    """DeepSeek-V3 (61 layers) on pp 6 under the default stack: the engine prices ceil(61 / 6) = 11 layers on the
    slowest rank and, by first_last_layers, 11 on the first, 10 on each of the 4 middle and 10 on the last
    (11 + 40 + 10 = 61); MindSpeed's list is the same layout."""
    run = _write(tmp_path, "deepseek-v3", "6, vpp: 1, ep: 64", 1536, "megatron-bridge-2026")
    code, out, err = run_main(capsys, "plan", run, "--emit", "megatron")
    assert code == 0, err
    assert "--decoder-first-pipeline-num-layers 11" in out and "--decoder-last-pipeline-num-layers 10" in out
    code, out, err = run_main(capsys, "plan", run, "--emit", "mindspeed")
    assert code == 0, err
    assert "--num-layer-list 11,10,10,10,10,10\n" in out
