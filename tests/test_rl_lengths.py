"""Prompt and response lengths of the RL points (validation/rl) from NeMo RL's v0.6 and v0.5 performance tables themselves.

The table's "G-Average Seq len" is a generation column (the page's nomenclature: "G-: Generation related"; NeMo RL
v0.6.0 logs ``mean_gen_tokens_per_sample`` as "Mean Generation Length", nemo_rl/experience/rollouts.py), so it is
the mean *response*. Its "Tokens / sec / GPU" is ``total_num_tokens / total_step_time / GPUs``
(nemo_rl/algorithms/utils.py, tag v0.6.0), where ``total_num_tokens`` sums the samples' prompt + response lengths
(``input_lengths``, nemo_rl/algorithms/grpo.py), so ``Tokens/sec/GPU x step time x GPUs / samples - G-Average Seq
len`` is the mean prompt. The published figures are written out below (docs/about/performance-summary.md at
7ea279ab, the v0.6 tables), not read from the specs.
"""
from __future__ import annotations

import math
from pathlib import Path
from statistics import mean

import pytest

from trainsim.posttrain.spec import load_posttrain

RL = Path(__file__).resolve().parents[1] / "validation" / "rl"

#: file: (#GPUs, G-GBS, G-Average Seq len, Tokens / sec / GPU, Total Step time (s), on policy, T-Max Sequence Length)
PUBLISHED = {
    "nemo-rl-h100-dsv3-256-sync.yaml": (256, 512, 701, 12.1, 134, True, 1536),
    "nemo-rl-h100-dsv3-512-sync.yaml": (512, 512, 697, 7.24, 111, True, 1536),
    "nemo-rl-h100-dsv3-512-async.yaml": (512, 512, 710, 12.8, 64.1, False, 1536),
    "nemo-rl-h100-q235-128-sync.yaml": (128, 512, 5698, 58.9, 395, True, 8192),
    "nemo-rl-h100-q235-256-sync.yaml": (256, 512, 5713, 37.4, 312, True, 8192),
    "nemo-rl-h100-q235-256-async.yaml": (256, 512, 5721, 58.7, 231, False, 8192),
    "nemo-rl-h100-q30-32-sync.yaml": (32, 2048, 3203, 1102, 192, True, 4096),
    "nemo-rl-h100-q30-32-async.yaml": (32, 2048, 3201, 1414, 152, False, 4096),
    "nemo-rl-h100-q30-192-async8.yaml": (192, 2048, 3206, 1025, 34.5, False, 4096),
    "nemo-rl-h100-dsv3-512-async-fp8.yaml": (512, 512, 721, 14.1, 59.2, False, 1536),
    "nemo-rl-gb200-dsv3-128-sync.yaml": (128, 512, 711, 30.2, 108, True, 1536),
    "nemo-rl-gb200-dsv3-256-sync.yaml": (256, 512, 700, 16.4, 98.7, True, 1536),
    "nemo-rl-gb200-dsv3-256-async.yaml": (256, 512, 708, 26.7, 61.7, False, 1536),
    "nemo-rl-gb200-q235-64-sync.yaml": (64, 512, 5709, 163, 286, True, 8192),
    "nemo-rl-gb200-q235-128-sync.yaml": (128, 512, 5693, 67.4, 345, True, 8192),
    "nemo-rl-gb200-q235-128-async.yaml": (128, 512, 5705, 85.5, 278, False, 8192),
    "nemo-rl-gb200-q30-16-sync.yaml": (16, 2048, 3199, 1910, 221, True, 4096),
    "nemo-rl-gb200-q30-16-async.yaml": (16, 2048, 3197, 1406, 301, False, 4096),
}


#: NeMo RL's v0.5 tables (docs/about/performance-summary.md at tag v0.5.0, commit 6c708930: 'Nemo RL v0.5', H100 BF16,
#: H100 FP8 and GB200 BF16), every GRPO row (the DAPO row runs another data set): label -> (#GPUs, G-GBS, G-Average
#: Seq len, Tokens / sec / GPU, Total Step time (s), on policy, T-Max Sequence Length). A separate measurement on an
#: older stack (Megatron-Bridge 1e9a459b, vLLM 0.11.2), so its prompts are read from its own rows.
V05_TABLE = {
    "h100-llama8b-on": (16, 2048, 1019, 1581, 92.8, True, 4096),
    "h100-llama8b-off": (16, 2048, 1123, 2478, 64.8, False, 4096),
    "h100-dsv3-on": (256, 512, 744, 12.7, 134, True, 1536),
    "h100-dsv3-off": (512, 512, 738, 13.1, 64.9, False, 1536),
    "h100-q235-on": (128, 512, 5700, 54.1, 431, True, 8192),
    "h100-q235-off": (256, 512, 5707, 58.7, 203, False, 8192),
    "h100-q30-on": (32, 2048, 3196, 1066, 198, True, 4096),
    "h100-q30-off": (32, 2048, 3201, 1391, 154, False, 4096),
    "h100-q32b-on": (32, 2048, 3251, 571, 376, True, 4096),
    "h100-q32b-off": (64, 2048, 3252, 538, 200, False, 4096),
    "h100-fp8-llama8b-off": (16, 2048, 1128, 3052, 53.0, False, 4096),
    "h100-fp8-dsv3-off": (512, 512, 761, 14.1, 67.6, False, 1536),
    "gb200-llama8b-on": (8, 2048, 1066, 3359, 91.0, True, 4096),
    "gb200-llama8b-off": (8, 2048, 1107, 4463, 71.1, False, 4096),
    "gb200-dsv3-on": (128, 512, 996, 34.3, 128, True, 1536),
    "gb200-dsv3-off": (256, 512, 994, 31.7, 64.5, False, 1536),
    "gb200-q235-on": (64, 512, 5711, 140, 332, True, 8192),
    "gb200-q235-off": (128, 512, 5711, 87.9, 268, False, 8192),
    "gb200-q30-on": (16, 2048, 3198, 1822, 232, True, 4096),
    "gb200-q30-off": (32, 2048, 3204, 1558, 136, False, 4096),
    "gb200-q32b-on": (16, 2048, 3253, 1127, 381, True, 4096),
    "gb200-q32b-off": (32, 2048, 3258, 1025, 210, False, 4096),
}
#: the v0.5 rows written as specs: file -> V05_TABLE label
V05_FILES = {
    "nemo-rl-v05-h100-llama8b-16-sync.yaml": "h100-llama8b-on",
    "nemo-rl-v05-h100-llama8b-16-async.yaml": "h100-llama8b-off",
    "nemo-rl-v05-h100-llama8b-16-async-fp8.yaml": "h100-fp8-llama8b-off",
    "nemo-rl-v05-gb200-llama8b-8-sync.yaml": "gb200-llama8b-on",
    "nemo-rl-v05-gb200-llama8b-8-async.yaml": "gb200-llama8b-off",
    "nemo-rl-v05-h100-q32b-32-sync.yaml": "h100-q32b-on",
    "nemo-rl-v05-h100-q32b-64-async.yaml": "h100-q32b-off",
    "nemo-rl-v05-gb200-q32b-16-sync.yaml": "gb200-q32b-on",
    "nemo-rl-v05-gb200-q32b-32-async.yaml": "gb200-q32b-off",
    "nemo-rl-v05-h100-dsv3-256-sync.yaml": "h100-dsv3-on",
    "nemo-rl-v05-h100-dsv3-512-async.yaml": "h100-dsv3-off",
    "nemo-rl-v05-h100-dsv3-512-async-fp8.yaml": "h100-fp8-dsv3-off",
    "nemo-rl-v05-h100-q235-128-sync.yaml": "h100-q235-on",
    "nemo-rl-v05-h100-q235-256-async.yaml": "h100-q235-off",
    "nemo-rl-v05-h100-q30-32-sync.yaml": "h100-q30-on",
    "nemo-rl-v05-h100-q30-32-async.yaml": "h100-q30-off",
    "nemo-rl-v05-gb200-dsv3-128-sync.yaml": "gb200-dsv3-on",
    "nemo-rl-v05-gb200-dsv3-256-async.yaml": "gb200-dsv3-off",
    "nemo-rl-v05-gb200-q235-64-sync.yaml": "gb200-q235-on",
    "nemo-rl-v05-gb200-q235-128-async.yaml": "gb200-q235-off",
    "nemo-rl-v05-gb200-q30-16-sync.yaml": "gb200-q30-on",
    "nemo-rl-v05-gb200-q30-32-async.yaml": "gb200-q30-off",
}


#: NeMo RL's v0.4 table (docs/about/performance-summary.md at commit cff17f83, NVIDIA-NeMo/RL pull request 1560,
#: 2025-12-01: 'Nemo RL v0.4', DGX-H100, training and generation BF16; replaced by the v0.5 tables at tag v0.5.0),
#: every row (all GRPO): label -> (#GPUs, G-GBS, G-Average Seq len, Tokens / sec / GPU, Total Step time (s), on
#: policy, T-Max Sequence Length). Its own measurement on the v0.4.0 stack (Megatron-Bridge 62f4704b, vLLM 0.10.0),
#: so its prompts are read from its own rows.
V04_TABLE = {
    "h100-llama8b-on": (16, 2048, 1060, 1562, 97.7, True, 4096),
    "h100-llama8b-off": (16, 2048, 1129, 2161, 74.6, False, 4096),
    "h100-dsv3-on": (256, 512, 745, 11, 154, True, 1536),
    "h100-dsv3-off": (512, 512, 744, 11.0, 77.9, False, 1536),
    "h100-q235-on": (128, 512, 5671, 45.7, 506, True, 8192),
    "h100-q235-off": (256, 512, 5691, 52.2, 241, False, 8192),
    "h100-q30-on": (32, 2048, 3154, 925, 225, True, 4096),
    "h100-q30-off": (32, 2048, 3158, 864, 244, False, 4096),
    "h100-q32b-on": (32, 2048, 3206, 540, 393, True, 4096),
    "h100-q32b-off": (64, 2048, 3207, 494, 215, False, 4096),
}
#: the v0.4 rows written as specs: file -> V04_TABLE label
V04_FILES = {
    "nemo-rl-v04-h100-llama8b-16-sync.yaml": "h100-llama8b-on",
    "nemo-rl-v04-h100-llama8b-16-async.yaml": "h100-llama8b-off",
    "nemo-rl-v04-h100-dsv3-256-sync.yaml": "h100-dsv3-on",
    "nemo-rl-v04-h100-dsv3-512-async.yaml": "h100-dsv3-off",
    "nemo-rl-v04-h100-q235-128-sync.yaml": "h100-q235-on",
    "nemo-rl-v04-h100-q235-256-async.yaml": "h100-q235-off",
    "nemo-rl-v04-h100-q30-32-sync.yaml": "h100-q30-on",
    "nemo-rl-v04-h100-q30-32-async.yaml": "h100-q30-off",
    "nemo-rl-v04-h100-q32b-32-sync.yaml": "h100-q32b-on",
    "nemo-rl-v04-h100-q32b-64-async.yaml": "h100-q32b-off",
}


def v05_family(label: str) -> str:
    """Tokenizer and prompt template of a v0.5 row: Llama 3.1's, DeepSeek-V3's or Qwen3's (Qwen3-235B, -30B-A3B and
    -32B share one)."""
    return "llama" if "llama" in label else "dsv3" if "dsv3" in label else "qwen3"


def v05_extra_tokens(label: str) -> float:
    """Tokens per sample a v0.5 row's throughput column counts beyond G-Average Seq len."""
    gpus, samples, g_avg, tps, step_s, _, _ = V05_TABLE[label]
    return tps * step_s * gpus / samples - g_avg


def v05_prompt_len(fam: str) -> int:
    """A family's prompt in the v0.5 tables: the mean over that table's on-policy rows of the family, rounded."""
    return round(mean(v05_extra_tokens(k) for k, row in V05_TABLE.items() if row[5] and v05_family(k) == fam))


def v04_extra_tokens(label: str) -> float:
    """Tokens per sample a v0.4 row's throughput column counts beyond G-Average Seq len."""
    gpus, samples, g_avg, tps, step_s, _, _ = V04_TABLE[label]
    return tps * step_s * gpus / samples - g_avg


def v04_prompt_len(fam: str) -> int:
    """A family's prompt in the v0.4 table: the mean over its on-policy rows of the family, rounded."""
    return round(mean(v04_extra_tokens(k) for k, row in V04_TABLE.items() if row[5] and v05_family(k) == fam))


def family(name: str) -> str:
    """The tokenizer and prompt template a point's prompts go through: DeepSeek-V3's, or Qwen3's (Qwen3-235B and
    Qwen3-30B share tokenizer, chat template and data set)."""
    return "dsv3" if "-dsv3-" in name else "qwen3"


def extra_tokens(name: str) -> float:
    """Tokens per sample the throughput column counts beyond G-Average Seq len."""
    gpus, samples, g_avg, tps, step_s, _, _ = PUBLISHED[name]
    return tps * step_s * gpus / samples - g_avg


def prompt_len(fam: str) -> int:
    """A family's prompt: the mean of its on-policy rows' extra tokens (one-step-off rows average per-step rates
    over steps whose lengths differ more, so they are not used), rounded."""
    return round(mean(extra_tokens(n) for n, row in PUBLISHED.items() if row[5] and family(n) == fam))


def test_every_point_is_in_the_table():
    assert {p.name for p in RL.glob("*.yaml")} == set(PUBLISHED) | set(V05_FILES) | set(V04_FILES)
    assert set(V05_FILES.values()) <= set(V05_TABLE)
    assert set(V04_FILES.values()) == set(V04_TABLE)       # every row of the v0.4 table is a spec


def test_v04_prompts_by_hand():
    # Llama 3.1 8B on-policy: 1,562 x 97.7 x 16 / 2,048 = 1,192.2 tokens per sample, 132.2 over 1,060 -> 132.
    # DeepSeek-V3 on-policy: 11 x 154 x 256 / 512 = 847.0, 102.0 over 745 -> 102. Qwen3 on-policy: 235B 45.7 x 506
    # x 128 / 512 - 5,671 = 110.05; 30B-A3B 925 x 225 x 32 / 2,048 - 3,154 = 97.95; 32B 540 x 393 x 32 / 2,048 -
    # 3,206 = 109.94 -> 105.98 -> 106
    assert v04_extra_tokens("h100-llama8b-on") == pytest.approx(132.2, abs=0.05)
    assert v04_extra_tokens("h100-dsv3-on") == pytest.approx(102.0, abs=0.05)
    assert v04_extra_tokens("h100-q30-on") == pytest.approx(97.95, abs=0.01)
    assert (v04_prompt_len("llama"), v04_prompt_len("dsv3"), v04_prompt_len("qwen3")) == (132, 102, 106)


def test_v05_prompts_by_hand():
    # Llama 3.1 8B on-policy: 1,581 x 92.8 x 16 / 2,048 = 1,146.2 tokens per sample, 127.2 over 1,019; GB200 3,359 x
    # 91.0 x 8 / 2,048 = 1,194.0, 128.0 over 1,066 -> 127.6 -> 128. Qwen3 on-policy (235B, 30B-A3B, 32B on H100 and
    # GB200): 129.3, 101.9, 103.6, 99.0, 104.4, 101.6 -> 106.6 -> 107
    assert v05_extra_tokens("h100-llama8b-on") == pytest.approx(1581 * 92.8 * 16 / 2048 - 1019)
    assert v05_extra_tokens("h100-llama8b-on") == pytest.approx(127.2, abs=0.05)
    assert v05_extra_tokens("gb200-llama8b-on") == pytest.approx(128.0, abs=0.05)
    assert v05_prompt_len("llama") == 128 and v05_prompt_len("qwen3") == 107
    # DeepSeek-V3 on-policy: 12.7 x 134 x 256 / 512 - 744 = 106.9; 34.3 x 128 x 128 / 512 - 996 = 101.6 -> 104
    assert v05_extra_tokens("h100-dsv3-on") == pytest.approx(106.9, abs=0.05)
    assert v05_prompt_len("dsv3") == 104


@pytest.mark.parametrize("name,table", [(n, "v04") for n in sorted(V04_FILES)]
                         + [(n, "v05") for n in sorted(V05_FILES)])
def test_table_spec_lengths_follow_the_table(name, table):
    files, rows, prompt_len = {"v04": (V04_FILES, V04_TABLE, v04_prompt_len),
                               "v05": (V05_FILES, V05_TABLE, v05_prompt_len)}[table]
    pt = load_posttrain(RL / name)
    st = pt.step
    label = files[name]
    gpus, samples, g_avg, _, step_s, on_policy, cap = rows[label]
    assert pt.clusters[pt.student.cluster].chips == gpus
    assert pt.reported.step_time_s == step_s
    assert (st.mode == "sync") == on_policy
    assert st.sequences == samples
    assert st.rollout_len == g_avg
    assert st.prompt_len == prompt_len(v05_family(label))
    assert st.longest_seq_len == cap
    assert st.prompt_len + math.ceil(st.rollout_len * st.tail_factor) == cap


def test_hand_derivation_h100_dsv3_256():
    # 12.1 tokens/s/GPU x 134 s x 256 GPUs = 415,078 tokens in a step of 512 samples: 810.7 per sample, 109.7 more
    # than the 701 of G-Average Seq len
    assert extra_tokens("nemo-rl-h100-dsv3-256-sync.yaml") == pytest.approx(12.1 * 134 * 256 / 512 - 701)
    assert extra_tokens("nemo-rl-h100-dsv3-256-sync.yaml") == pytest.approx(109.7, abs=0.05)
    # DeepSeek-V3 on-policy: 109.7, 106.6, 104.4, 109.3 -> 107.5 -> 108; Qwen3: 118.4, 121.4, 103.0, 118.2, 120.3,
    # 98.7 -> 113.3 -> 113
    assert prompt_len("dsv3") == 108 and prompt_len("qwen3") == 113


def test_the_extra_tokens_are_a_prompt_not_a_factor():
    # an averaging artefact (mean of per-step rates against the mean step) would scale with the sequence: the ratio
    # spreads from 1.02 (Qwen3-235B, 5,700 tokens) to 1.16 (DeepSeek-V3, 700), while the extra tokens stay within
    # 23 of each other over a 8x range of lengths
    on = [n for n, row in PUBLISHED.items() if row[5]]
    ratios = [1 + extra_tokens(n) / PUBLISHED[n][2] for n in on]
    extras = [extra_tokens(n) for n in on]
    assert max(ratios) - min(ratios) > 0.1
    assert max(extras) - min(extras) < 25
    # and the spec's former 200-token prompt is not what the table counts
    assert all(abs(e - 200) > 75 for e in extras)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_spec_lengths_follow_the_table(name):
    pt = load_posttrain(RL / name)
    st = pt.step
    _, samples, g_avg, _, _, _, cap = PUBLISHED[name]
    assert st.sequences == samples
    assert st.rollout_len == g_avg
    assert st.prompt_len == prompt_len(family(name))
    # the longest sample reaches the recipe's max_total_sequence_length (prompt + response, vLLM max_model_len)
    assert st.longest_seq_len == cap
    assert st.prompt_len + math.ceil(st.rollout_len * st.tail_factor) == cap
