"""Compute time of one layer for one micro-batch on one chip: GEMMs, flash attention, memory-bound ops.

* GEMM roofline (Williams, Waterman & Patterson 2009): t = max(2 M N K / (peak x eff),
  (M K + K N + M N) x bytes / (HBM bandwidth x mem_eff)) + launch latency. Small GEMMs (few tokens per expert,
  decode) become bandwidth-bound by this max(); large ones run at the calibrated fraction of peak.
* Attention core (:func:`attention_fwd`), flash-style causal kernel by default (Dao 2023): forward FLOPs
  2 x heads x (d_qk + d_v) x tokens x mean causal context (see :func:`trainsim.model.counts.mean_context`), at
  the kernel's ``attn_eff`` of the BF16 peak (:func:`attention_kernel_eff`, per chip family and kernel; times
  :func:`attention_head_dim_factor` where the family's softmax bounds small head dims); backward
  (:func:`attention_bwd`) takes :func:`attn_bwd_ratio` times the forward
  (flash), the measured sparse-attention kernel's rate for the cores it runs (:func:`dsa_bwd_rate`), or twice
  the score GEMMs and the score tensors' backward bytes (unfused).
* Memory-bound operations (norms, residual adds, rotary, activation functions, MoE permutation, router,
  FP8 casts) by bytes moved over HBM bandwidth: :func:`elementwise_bytes_per_token`.

Sharding of each matrix by the plan follows ``Matrix.group`` / ``Matrix.split`` (Shoeybi et al. 2019 for tp;
Megatron-Core MoE for ep x etp): per chip a column-split GEMM has N / tp, a row-split one K / tp; replicated
ones (MLA down-projections, router) run in full on every tensor-parallel rank.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..model.arch import AttentionCore, LayerKind, Matrix
from ..model.counts import attention_fwd_flops_per_token, mean_context
from ..parallel.sharding import sharded_shape
from .calibration import Calib
from .comm_ep import dispatched_rows_per_token
from ..errors import TrainsimError
from .context import BF16_BYTES, BLOCK_SCALED_RECIPES, FP32_BYTES, StepContext
from .arrays import Num
from ..parallel.plan import Plans


def gemm_shape_eff(m: Num, n: Num, k: Num, tile_m: Num, tile_n: Num, k0: Num, units: Num, k_epi: Num = 0.0,
                   epi_overlap: Num = 0.0, waves: Num | None = None, stream_k: Num = 0.0) -> Num:
    """Fraction of the large-GEMM rate a GEMM of this shape reaches: tile x wave x K-loop quantisation.

    A GEMM is cut into ``tile_m`` x ``tile_n`` output tiles (the last row and column of tiles partly empty: tile
    quantisation), the tiles run in waves over the chip's ``units`` SMs / SM clusters / cores (the last wave
    partly idle: wave quantisation), and each tile streams K after a fixed prologue (``k0``) and then writes its
    outputs (the epilogue, ``k_epi`` K-steps long: :func:`gemm_epilogue_k`). Where the epilogue runs after the K
    loop on the same SM (``epi_overlap`` 0) a tile takes k0 + K + k_epi K-steps; where the accumulator is double
    buffered so the epilogue of one tile overlaps the K loop of the next (``epi_overlap`` 1) it takes
    k0 + max(K, k_epi). The K loop is busy K / that of the time. NVIDIA, "Matrix Multiplication Background User's
    Guide" (2023), sections on tile and wave quantisation; the epilogue as DeepGEMM's H800 FP8 table shows it
    (tests/test_gemm_shape.py). No fitted constant: tiles, k0, units and the overlap are hardware / kernel facts
    (perf/data/constants.yaml). Large GEMMs run at ``gemm_eff``.

    Tile and wave terms together are M N / (tile_m tile_n units W), W the waves (the tile counts cancel): the GEMM
    takes W waves of one tile's K loop. W is :func:`gemm_waves` (ceil(tiles / units), or tiles / units where a
    stream-K schedule spreads a short tail wave: ``stream_k``); ``waves`` replaces it by an expected wave count
    where M is a random row count (a routed expert's tokens: :func:`expected_waves`).
    """
    m = np.maximum(np.asarray(m, dtype=np.float64), 1.0)
    n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    steps = k0 + np.maximum(k + (1.0 - epi_overlap) * k_epi, k_epi)
    if waves is not None:   # never fewer waves than the rows and columns fill: the tile x wave term stays <= 1
        w = np.maximum(np.asarray(waves, dtype=np.float64), m * n / (tile_m * tile_n * units))
        return m * n / (tile_m * tile_n * units * w) * (k / steps)
    tm, tn = np.ceil(m / tile_m), np.ceil(n / tile_n)
    tile_q = (m / (tm * tile_m)) * (n / (tn * tile_n))
    tiles = tm * tn
    wave_q = tiles / (gemm_waves(tiles, units, stream_k) * units)
    return tile_q * wave_q * (k / steps)


def gemm_waves(tiles: Num, units: Num, stream_k: Num = 0.0) -> Num:
    """Waves of one tile's K loop that a GEMM of ``tiles`` output tiles takes over ``units`` SMs:

        W = tiles / units      where stream_k, tiles >= units and the tail wave is under half full
                               (2 (tiles - floor(tiles / units) units) < units)
        W = ceil(tiles / units) otherwise (data-parallel waves, the last one partly idle)

    A data-parallel GEMM launches one tile per SM per wave, so a tail of a few tiles costs a whole wave (NVIDIA,
    "Matrix Multiplication Background User's Guide", wave quantisation). A stream-K schedule (Osama et al.,
    "Stream-K: Work-centric Parallel Decomposition for Dense Matrix-Matrix Multiplication on the GPU", PPoPP 2023)
    instead hands every persistent SM an equal share of the tail tiles' K iterations and reduces the partial tiles
    through a workspace. CUTLASS's Hopper scheduler picks it by this rule (``DecompositionMode::Heuristic``:
    include/cutlass/gemm/kernel/tile_scheduler_params.h ``get_num_sk_tiles`` @ NVIDIA/cutlass 90d3b0fb, "prefer
    data-parallel decomposition if we have more than one wave and the tail wave is more than half full"; Colfax
    Research, "CUTLASS Tutorial: Persistent Kernels and Stream-K", 2024-12-19, "if either there is no wave
    quantization, or the tail wave is at least half full, then the scheduler falls back to data-parallel"), and
    cuBLAS's BF16 kernels behave so on the H200 measured here (validation/kernels/h200-2026-12-04.json: M 1,024,
    K 8,192, N 2,048 / 2,176 / 2,304 = 128 / 136 / 144 tiles of 128 x 128 on 132 SMs, 617 / 576 / 613 TFLOP/s,
    no second wave; tests/test_h200_kernels.py). Below one full wave the grid stays one partial wave: CUTLASS
    would split a grid under half the SMs too, but the measured M = 128 call (64 tiles) ran at 0.46 / 0.54 of M
    = 2,048 (two runs), which one half-idle wave gives (0.47) and a split over all SMs does not (0.57 / 0.65, then
    bound by the weight read at the engine's HBM rate). The reduction of split tiles (a tile_m x tile_n FP32
    partial per split) is not priced: the measured 136 / 144-tile calls are 7-10% / 3-4% under the balanced
    rate. ``stream_k`` is a chip family's constant (perf/data/constants.yaml gemm_stream_k): 1 for cuBLAS's dense
    GEMMs on Hopper, 0 where no such measurement is taken (DeepGEMM's persistent kernels keep whole waves:
    tests/test_gemm_shape.py)."""
    tiles = np.asarray(tiles, dtype=np.float64)
    full, total = np.floor(tiles / units), np.ceil(tiles / units)
    spread = (np.asarray(stream_k) > 0.0) & (full >= 1.0) & (2.0 * (tiles - full * units) < units)
    return np.where(spread, tiles / units, total)


def gemm_epilogue_k(peak: Num, eff: Num, hbm_bw: Num, mem_eff: Num, out_bytes: Num) -> Num:
    """Length of a GEMM tile's epilogue in K-steps of its main loop: k_epi = out_bytes x peak x eff /
    (2 x hbm_bw x mem_eff).

    After its K loop an SM writes its tile_m x tile_n outputs (``out_bytes`` each: BF16, also behind FP8 inputs in
    Transformer Engine) before it starts its next tile, while every SM does the same: the write runs at the SM's
    share of HBM bandwidth (hbm_bw x mem_eff / units) and costs tile_m x tile_n x out_bytes of it, where one
    K-step costs 2 x tile_m x tile_n FLOPs at peak x eff / units; the ratio is k_epi, whatever the tile. DeepGEMM
    (deepseek-ai/DeepGEMM README, commits a6d97a1 and 55ab91f: H800 FP8, M = 4096) measures it: at K = 512 its
    GEMM reaches 590 / 751 TFLOPS against 1358 / 1426 at K = 16384, which K / (K + k0) alone puts at 0.89 of it
    and K / (K + k0 + k_epi) at 0.45 (tests/test_gemm_shape.py checks its six dense shapes)."""
    return out_bytes * peak * eff / (2.0 * hbm_bw * mem_eff)


def gemm_time(m: Num, n: Num, k: Num, peak: Num, eff: Num, hbm_bw: Num, mem_eff: Num, bytes_el: Num,
              latency_s: Num, shape: tuple[float, ...] | None = None, m_var: Num | None = None) -> Num:
    """Roofline time of one (M x K) @ (K x N) GEMM; ``shape`` = (tile_m, tile_n, k0, units, out_bytes, epi_overlap[,
    stream_k]): the tile, prologue, SM count, epilogue overlap and tail-wave schedule (:func:`gemm_waves`; 0 where
    omitted) of :func:`gemm_shape_eff` and the output bytes of its epilogue (:func:`gemm_epilogue_k`) (None: no
    shape effect, as the inference model is calibrated).

    Memory side: the inputs at ``bytes_el`` each (1 for FP8 operands) and the output at ``out_bytes`` (BF16 behind
    FP8 inputs in Transformer Engine, ``linear.py`` ``out_dtype=activation_dtype``; ``bytes_el`` without a shape):
    (M K + K N) bytes_el + M N out_bytes over the HBM rate. ``m_var``: the variance of M where M is the mean of a
    random row count (a routed expert's tokens); the compute time is then the expected one, over
    :func:`expected_waves`. Plus one kernel's fixed time, ``latency_s`` (:func:`kernel_floor_time`)."""
    q: Num = 1.0
    out_b: Num = bytes_el
    if shape is not None:
        tile_m, tile_n, k0, units, out_bytes, epi_overlap = shape[:6]
        stream_k = shape[6] if len(shape) > 6 else 0.0
        out_b = out_bytes
        k_epi = gemm_epilogue_k(peak, eff, hbm_bw, mem_eff, out_bytes)
        waves = None if m_var is None else expected_waves(m, m_var, n, tile_m, tile_n, units)
        q = gemm_shape_eff(m, n, k, tile_m, tile_n, k0, units, k_epi, epi_overlap, waves, stream_k)
    t_c = 2.0 * m * n * k / (peak * eff * q)
    t_m = ((m * k + k * n) * bytes_el + m * n * out_b) / (hbm_bw * mem_eff)
    return np.maximum(t_c, t_m) + kernel_floor_time(1.0, latency_s)


def _normal_sf(z: np.ndarray) -> np.ndarray:
    """P(Z > z) of a standard normal, from erfc by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)."""
    x = np.abs(z) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) \
        * np.exp(-x * x)
    return np.where(z >= 0.0, 0.5 * erfc, 1.0 - 0.5 * erfc)


def expected_waves(m: Num, m_var: Num, n: Num, tile_m: Num, tile_n: Num, units: Num) -> Num:
    """Expected waves E[W(R)] of a GEMM whose M is a random row count X of mean ``m`` and variance ``m_var`` (a
    routed expert's tokens in a micro-batch): R = ceil(X / tile_m) rows of tiles, W(R) = ceil(R ceil(N / tile_n) /
    units). X taken as normal, continuity-corrected (X is an integer): P(R > j) = P(X > j tile_m) =
    Q((j tile_m + 1/2 - m) / sigma), P(R = j) = P(R > j - 1) - P(R > j). ``m_var`` 0 gives W(ceil(m / tile_m)).

    A GEMM's compute time is W waves of one tile's K loop (:func:`gemm_shape_eff`), so the expected time of an
    expert's GEMM is that of E[W] waves; the mean-field W(ceil(m / tile_m)) is exact only for equal groups
    (DeepGEMM's benchmark tables). Routed counts spread around their mean: DeepSeek-V3 at EP 8 on B200 (m =
    1,024, 256-row tiles, 32 columns of tiles over 74 SM pairs) has R = 4 (128 tiles, 2 waves) or R = 5 (160
    tiles, 3 waves) about equally often: 2.49 waves, not 2 (tests/test_grouped_gemm.py). Each expert is its own
    GEMM over its own rows, its last row of tiles partly empty: Transformer Engine's GroupedLinear (Megatron-Core
    ``TEGroupedMLP``) launches one cuBLAS GEMM per expert (transformer_engine/common/gemm/cublaslt_gemm.cu
    ``multi_stream_cublas_gemm`` @ d0067d0d, round-robin over 4 compute streams), Megatron-Core's legacy
    GroupedMLP one hipBLAS / cuBLAS GEMM per expert (the Primus rows' notes); DeepGEMM's grouped kernel pads each
    expert's segment to its M block ("each expert segment must be aligned to the GEMM M block size",
    deepseek-ai/DeepGEMM README @ 38f8ef7). Not priced: the overlap of the 4 streams' GEMMs, which can fill one
    expert's last wave with the next expert's tiles (DeepGEMM's one persistent launch pools all groups' tiles:
    ``Scheduler`` @ a6d97a1)."""
    mu = np.maximum(np.asarray(m, dtype=np.float64), 1.0)     # as gemm_shape_eff: at least one row
    sd = np.sqrt(np.maximum(np.asarray(m_var, dtype=np.float64), 0.0))
    tn = np.ceil(np.maximum(np.asarray(n, dtype=np.float64), 1.0) / tile_n)
    mu, sd, tn, tm, u = np.broadcast_arrays(mu, sd, tn, np.asarray(tile_m, dtype=np.float64),
                                            np.asarray(units, dtype=np.float64))
    base = np.ceil(np.ceil(mu / tm) * tn / u)
    if not np.any(sd > 0.0):
        return base
    # each distinct (mu, sd, tn, tm, u), bit for bit, is summed once (a search's layer table repeats a few dozen
    # of them over thousands of rows): a row's value depends on its own inputs alone (below)
    rows = np.stack([mu, sd, tn, tm, u], axis=-1).reshape(-1, 5)
    _, first, back = np.unique(rows.view(np.dtype((np.void, rows.itemsize * 5))).ravel(), return_index=True,
                               return_inverse=True)
    ew = _expected_waves_rows(*rows[first].T)[back.ravel()].reshape(base.shape)
    return np.where(sd > 0.0, ew, base)


def _expected_waves_rows(mu: np.ndarray, sd: np.ndarray, tn: np.ndarray, tm: np.ndarray,
                         u: np.ndarray) -> np.ndarray:
    """:func:`expected_waves`'s sum over rows of tiles, one 1-d row of inputs per GEMM (rows with ``sd`` 0 are
    left at 0: the caller takes the mean-field value for them).

    Each row sums its own window, 8 standard deviations each side, in order (cumsum, no pairwise regrouping); a
    row's array may be wider than its window, the extra terms exact zeros added before and after it, so a row's
    value never depends on the other rows evaluated with it (the pruned search equals the exhaustive one). Rows are
    evaluated in groups whose windows are within a factor of two of each other, one array per group as wide as its
    widest row: the same values as one array as wide as the widest row of all, at a fraction of its cost (S2's
    layer tables: 8,400 rows, windows 6 wide on average and 137 at most; the one wide array took 80% of the
    scenario's CPU time)."""
    wr = np.ceil(8.0 * sd / tm) + 2.0
    out = np.zeros_like(mu)
    on = sd > 0.0
    group = np.where(on, np.ceil(np.log2(wr)), -1.0)
    for g in sorted(set(group[on].tolist())):     # not np.unique: its plain form loads numpy.ma (the plan process)
        i = group == g
        out[i] = _waves_in_window(mu[i], sd[i], tn[i], tm[i], u[i], wr[i])
    return out


def _waves_in_window(mu: np.ndarray, sd: np.ndarray, tn: np.ndarray, tm: np.ndarray, u: np.ndarray,
                     wr: np.ndarray) -> np.ndarray:
    """:func:`expected_waves` of rows with ``sd`` > 0 (1-D arrays), each over its own window of ``wr`` rows of tiles
    each side of floor(mu / tile_m), in one array as wide as the widest window. P(R > j - 1) is the column before
    P(R > j) (j - 1 + off is exact in floats), so the tail is evaluated once per column."""
    w = int(np.max(wr))
    j0 = np.floor(mu / tm)
    off = np.arange(-w - 1, w + 2, dtype=np.float64)
    jr = j0[..., None] + off                                      # rows of tiles, R = j (one column before)
    tail = _normal_sf((jr * tm[..., None] + 0.5 - mu[..., None]) / sd[..., None])
    above, above_prev = tail[..., 1:], tail[..., :-1]            # P(R > j), P(R > j - 1)
    jr, off = jr[..., 1:], off[1:]
    p = np.where(jr > 0.0, above_prev - above, np.where(jr == 0.0, 1.0 - above, 0.0))  # P(R = j); none below 0
    p = np.where((off >= -wr[..., None]) & (off <= wr[..., None] + 1.0), p, 0.0)      # the row's own window
    waves = np.ceil(np.maximum(jr, 0.0) * tn[..., None] / u[..., None])
    return np.cumsum(p * waves, axis=-1)[..., -1] / np.cumsum(p, axis=-1)[..., -1]


def gemm_shape(c: Calib) -> tuple[float, ...]:
    """The chip family's GEMM shape terms, as :func:`gemm_time` takes them (perf/data/constants.yaml)."""
    return (c.gemm_tile_m, c.gemm_tile_n, c.gemm_k0, c.compute_units, c.gemm_out_bytes, c.gemm_epilogue_overlap,
            c.gemm_stream_k)


#: matrix groups a gated FFN's gate and up projections can belong to (:func:`gemm_matrices`; a stack profile's
#: ``gated_ffn_separate`` names those of them whose gate and up run as two GEMMs)
GATED_FFN_GROUPS = ("mlp", "shared_expert", "expert")

#: the pseudo-group of ``separate`` (:func:`gemm_matrices`) under which an attention block's q, k and v run as
#: three GEMMs (a stack profile's ``qkv_separate``, :func:`trainsim.frameworks.separate_gemms`)
QKV_GROUP = "qkv"

#: the column-parallel input projections of an attention block Megatron-Core runs as one GEMM: q, k, v
#: (``linear_qkv``) and a Gated DeltaNet's output gate z and beta / decay inputs ba (its one ``in_proj``)
QKV_FUSED_NAMES = ("q", "k", "v", "z", "ba")


def fused_qkv(lk: LayerKind) -> Matrix | None:
    """The one input-projection GEMM Megatron-Core runs for a layer's attention, ``qkv``, of width the sum of the
    fused matrices' N (:data:`QKV_FUSED_NAMES`), or None where the layer has no separate q, k and v (a checkpoint
    that stores them fused already, MLA, whose q and kv paths are apart).

    Megatron-Core ``SelfAttention`` builds one ``linear_qkv`` (a ColumnParallelLinear, or Transformer Engine's
    LayerNormColumnParallelLinear) of output width ``query_projection_size + 2 * kv_projection_size``, i.e.
    (n_q + 2 n_kv) x head_dim, and splits its output after the GEMM (NVIDIA/Megatron-LM
    megatron/core/transformer/attention.py ``SelfAttention.__init__`` ``linear_qkv_out_dim`` at d98e8a64; the
    same ``linear_qkv`` since core_r0.5); Megatron-LM's legacy ``ParallelAttention`` one ``query_key_value`` of
    3 x projection size (megatron/model/transformer.py), and metaseq's ``ModelParallelMultiheadAttention``
    ``qkv_proj`` of 3 x embed_dim (``combine_qkv_proj = True``, facebookresearch/metaseq
    metaseq/model_parallel/modules/multihead_attention.py at 02dd7a85). Its Gated DeltaNet projects q, k, v, z
    and b, a with one ``in_proj`` of width ``2 qk_dim + 2 v_dim + in_proj_extra_dim``
    (megatron/core/ssm/gated_delta_net/common.py at d98e8a64). MLA's down-projections ``linear_q_down_proj`` and
    ``linear_kv_down_proj`` stay two GEMMs: their fused ``linear_qkv_down_proj`` (``FusedMLASelfAttention``,
    Megatron-LM 8fd390d1, 2026-03-11) is opt-in (``mla_down_proj_fusion``, default False, set by no
    Megatron-Bridge recipe at the mirrored head), so they are left as they are."""
    by = {m.name: m for m in lk.matrices if m.group == "attn" and m.split == "col"}
    if not all(n in by for n in ("q", "k", "v")):
        return None
    parts = [by[n] for n in QKV_FUSED_NAMES if n in by]
    if len({m.k for m in parts}) != 1:
        return None
    return replace(parts[0], name="qkv", n=sum(m.n for m in parts))


def gemm_matrices(lk: LayerKind, separate: tuple[str, ...] = ()) -> tuple[Matrix, ...]:
    """The GEMMs a training stack runs for a layer's weight matrices: each gated FFN's ``<name>.gate`` and
    ``<name>.up`` (k x ffn each) as one fc1 GEMM ``<name>.fc1`` of k x 2 ffn, in its place and with its group,
    split and counts, except in the matrix groups listed in ``separate`` (the stack profile's
    ``gated_ffn_separate``, :data:`GATED_FFN_GROUPS`), which run them as two GEMMs over the same input; and the
    attention's q, k and v (with a Gated DeltaNet's z and ba) as one ``qkv`` GEMM in q's place
    (:func:`fused_qkv`) unless ``separate`` holds :data:`QKV_GROUP` (the profile's ``qkv_separate``).

    One fc1: Megatron-Core builds ``linear_fc1`` with output width ``ffn_hidden_size * 2`` when
    ``gated_linear_unit`` is set (megatron/core/transformer/mlp.py ``MLP.__init__`` at core_r0.8.0 and d98e8a64;
    a Transformer Engine LayerNormLinear, layernorm_mlp.py's fused module likewise), and its grouped experts one
    fc1 weight of ``2 x moe_ffn_hidden_size`` per expert (moe/experts.py ``TEGroupedMLP``); Megatron-LM 23.x
    ``ParallelMLP`` (``dense_h_to_4h`` doubled under ``--swiglu``), and the stacks built on them (NeMo,
    Megatron-Bridge, MindSpeed, Primus), the same. NeMo AutoModel's grouped experts also hold one
    ``gate_and_up_projs`` (nemo_automodel/components/moe/layers.py ``GroupedExperts`` / ``GroupedExpertsDeepEP`` at
    89e3a9fdd), but its dense ``MLP`` (dense layers, shared experts) has ``gate_proj`` and ``up_proj``. Two GEMMs:
    torchtitan ``FeedForward`` ``w2(silu(w1(x)) * w3(x))`` (torchtitan/models/llama/model.py at 9dec370; its MoE
    experts run ``_grouped_mm`` for w1 and w3 apart, torchtitan/models/common/moe.py at b5bcd76c6), Meta's Llama 3
    reference (meta-llama/llama3 llama/model.py ``FeedForward`` at 0a3d7172: w1, w3 two ColumnParallelLinear).
    Three q / k / v GEMMs: the stacks whose attention holds wq, wk, wv (q_proj, k_proj, v_proj) as separate
    linears (their profiles' ``qkv_separate_source``).

    The FLOPs are the same either way; the GEMM shape (:func:`gemm_shape_eff`: N = 2 ffn / tp fills tiles and
    waves the two N = ffn / tp GEMMs fill twice), its memory side (the input read once) and its launches are not.
    Example (test): Llama 3.1 8B (hidden 4,096, ffn 14,336) at tp 2: one 4,096 x 14,336 fc1 GEMM per chip, or
    two of 4,096 x 7,168; its attention one 4,096 x 6,144 qkv GEMM ((32 + 2 x 8) x 128), or 4,096 x 4,096 and
    two of 4,096 x 1,024."""
    sep = set(separate)
    names = {m.name for m in lk.matrices}
    qkv = None if QKV_GROUP in sep else fused_qkv(lk)
    out: list[Matrix] = []
    for m in lk.matrices:
        if qkv is not None and m.group == "attn" and m.split == "col" and m.name in QKV_FUSED_NAMES:
            if m.name == "q":
                out.append(qkv)
        elif m.name.endswith(".gate") and m.name[:-5] + ".up" in names and m.group not in sep:
            up = next(u for u in lk.matrices if u.name == m.name[:-5] + ".up")
            out.append(replace(m, name=m.name[:-5] + ".fc1", n=m.n + up.n))
        elif m.name.endswith(".up") and m.name[:-3] + ".gate" in names and m.group not in sep:
            continue
        else:
            out.append(m)
    return tuple(out)


def layer_gemm_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward GEMM time of one layer per micro-batch per chip. ``tokens`` = tokens a tp group holds. The GEMMs
    are the stack's (:func:`gemm_matrices`: a gated FFN's gate and up as one fc1 unless the stack runs them
    apart); a matrix of several copies runs all of them (:func:`copies_gemm_time`); one the stack keeps in BF16
    in an FP8 run (``Matrix.fp8`` False) runs at the BF16 peak and ``gemm_eff`` with BF16 operands, as the output
    head does (:func:`head_gemm_fwd`)."""
    c = ctx.calib
    peak, eff, bw, mb = ctx.gemm_peak, ctx.gemm_eff, ctx.chip.hbm_bw, c.mem_eff
    d0 = gemm_shape(c)
    t = np.zeros_like(tokens)
    for mat in gemm_matrices(lk, ctx.separate_gemms):
        if mat.group == "expert":
            e = lk.moe.experts if lk.moe else mat.count
            # tokens per local expert: dp x tokens x active / (E x edp) = tokens x active x ep x etp / (E x tp x cp)
            m_e = tokens * mat.active * p.ep * p.etp / (e * p.tp)
            k, n = sharded_shape(mat, p.etp)
            local = e / p.ep
            # each local expert one GEMM over its own rows: routed counts spread (expected waves), except under
            # a benchmark gate that hands every expert the same count (perf/routing.py fake_balanced_blocks)
            var = 0.0 * m_e if ctx.moe_fake_balanced_gate else expert_rows_var(m_e, mat.active, e)
            t = t + local * gemm_time(m_e, n, k, peak, eff, bw, mb, ctx.act_bytes, 0.0, d0, var) * c.expert_imbalance \
                + kernel_floor_time(1.0, c.gemm_latency_s)
        elif mat.group == "router":   # the router GEMM stays in BF16 under FP8 (DeepSeek-V3 sec. 3.3.1)
            t = t + gemm_time(tokens / p.tp, mat.n, mat.k, peak, eff, bw, mb, BF16_BYTES, c.gemm_latency_s, d0)
        else:
            k, n = ((float(mat.k), float(mat.n)) if mat.group == "other" or mat.split == "none"
                    else sharded_shape(mat, p.tp))
            if ctx.fp8_gemm and not mat.fp8:   # kept in BF16 in an FP8 run: the BF16 rate and operands
                t = t + copies_gemm_time(mat, tokens, k, n, ctx.chip.flops("bf16"), c.gemm_eff, bw, mb, BF16_BYTES,
                                         c.gemm_latency_s, d0)
            else:
                t = t + copies_gemm_time(mat, tokens, k, n, peak, eff, bw, mb, ctx.act_bytes, c.gemm_latency_s, d0)
    return t


def copies_gemm_time(mat: Matrix, tokens: Num, k: Num, n: Num, peak: Num, eff: Num, hbm_bw: Num, mem_eff: Num,
                     bytes_el: Num, latency_s: Num, shape: tuple[float, ...] | None = None) -> Num:
    """Time of the GEMMs of a matrix that is not a routed expert, over ``tokens`` tokens: its ``count`` copies
    (:class:`~trainsim.model.arch.Matrix`), each a (tokens x active / count) x ``k`` @ ``k`` x ``n`` GEMM, in one
    launch:

        count x gemm_time(tokens x active / count, n, k) + latency_s

    (:func:`gemm_time` without its latency for each copy: the copies run as one batched kernel, as a routed
    expert's grouped GEMM does in :func:`layer_gemm_fwd`). One copy used by every token (count = active = 1)
    is :func:`gemm_time` itself. DeepSeek-V4's grouped output projection o_a: g = 8 copies of (H d / g) x
    o_lora, each used by every token (active 8), which Megatron-Core runs as one ``torch.einsum`` over the g
    groups (Megatron-LM 43e45e1307 experimental_attention_variant/deepseek_v4_hybrid_attention.py line 468): 8
    GEMMs of 4,096 x 1,024 per token, 2 x 8 x 4,096 x 1,024 = 67.1 MFLOP forward, not the one GEMM's 8.4."""
    rows = tokens * (mat.active / mat.count)
    return mat.count * gemm_time(rows, n, k, peak, eff, hbm_bw, mem_eff, bytes_el, 0.0, shape) + latency_s


def expert_rows_var(m_e: Num, active: float, experts: float) -> Num:
    """Variance of one expert's rows in a micro-batch, m_e x (1 - k / E): each of the m_e E / k tokens that could
    reach it picks it with probability k / E (top-k of E), a binomial count. That is the spread of Megatron-Core's
    ``moe_router_force_load_balancing`` (random router logits, ``apply_random_logits``,
    megatron/core/transformer/moe/router.py @ d98e8a64; the benchmark setting of the Megatron-Bridge performance
    tables, scripts/performance/utils/overrides.py @ 067f987d), the least a router gives: a learned router's
    counts spread more. NeMo AutoModel's ``FakeBalancedGate`` and Primus's forced balance route round-robin, equal
    counts (the run setting ``moe_fake_balanced_gate``: :func:`layer_gemm_fwd` takes 0). Read by
    :func:`expected_waves`."""
    return np.asarray(m_e, dtype=np.float64) * (1.0 - active / experts)


def head_gemm_fwd(ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Output head (logits) GEMM forward, the padded vocab split over tp
    (:meth:`~trainsim.perf.context.StepContext.vocab_per_tp`; its BF16 output written by the GEMM's roofline).
    The loss over the logits is :func:`loss_time`; the head's backward is two GEMMs of the same size (perf/step.py).

    The head runs in BF16 also in an FP8 run: at the chip's BF16 peak and ``gemm_eff``, BF16 operands. FP8 reaches
    only the Transformer Engine modules of the decoder layers; Megatron-Core builds the output layer as its own
    ``tensor_parallel.ColumnParallelLinear`` (megatron/core/models/gpt/gpt_model.py at core_r0.8.0, still at
    d98e8a6), whose forward is a plain ``torch.matmul`` of the BF16 activations and weight
    (megatron/core/tensor_parallel/layers.py ``linear_with_grad_accumulation_and_async_allreduce``), and so are its
    two backward GEMMs. (Megatron-Core added an opt-in MXFP8 head, ``fp8_output_proj``, on 2026-05-31, commit
    3f6a2ed8; not modelled: off by default.)

    A run whose head computes in FP32 (``head_precision: fp32``; BloombergGPT, arXiv 2303.17564 App. C.1 runs
    v1.3-v1.4 'Use FP32 precision for LM-head computation (prior to softmax)' and C.2, v2.0, the run measured,
    'Use FP32 precision in LM-head') multiplies FP32 operands. PyTorch runs an FP32 matmul on the CUDA cores, not
    on TF32 Tensor Cores, from 1.12 on (docs notes/cuda.rst: ``torch.backends.cuda.matmul.allow_tf32`` 'defaults
    to False in PyTorch 1.12 and later'; the stacks of 2022 shipped 1.12): at the chip's FP32 (non-Tensor) peak
    (catalog ``fp32_dense_tflops``; A100 19.5 TFLOP/s, 1/16 of its BF16 312) and ``gemm_eff_fp32`` (PyTorch's own
    GA100 measurement, constants.yaml), 4-byte operands and output, no tensor-core tile model (shape None):

        t = max(2 M N K / (peak_fp32 x gemm_eff_fp32), (M K + K N + M N) x 4 / (HBM x mem_eff)) + launch

    BloombergGPT per micro-batch (M = 4 x 2,048 tokens, N = 131,072, K = 7,680): 1.649e13 FLOP, 0.846 s forward
    and 1.691 s for the two backward GEMMs at 19.5 TFLOP/s, against 0.075 + 0.150 s in BF16 at 0.70 of 312.
    Its memory (the FP32 copies of the weight, 4 x V x h = 4.0 GB, and input autograd keeps for the backward, and
    the FP32 logits) is :func:`trainsim.perf.memory.fp32_head_bytes`; the loss's bytes moved are the BF16 head's
    (its upcast of the logits reads 4 bytes instead of 2 and writes nothing, a few ms)."""
    a, c = ctx.arch, ctx.calib
    if ctx.head_precision == "fp32":
        fp32 = ctx.chip.peak_flops.get("fp32") or 0.0
        if not fp32 > 0:
            raise TrainsimError(f"training.head_precision: fp32 needs the chip's FP32 (non-Tensor) rate; chip "
                                f"{ctx.chip.id} states none (hardware.yaml fp32_dense_tflops)")
        return gemm_time(tokens, ctx.vocab_per_tp(p), a.hidden, fp32, c.gemm_eff_fp32, ctx.chip.hbm_bw,
                         c.mem_eff, FP32_BYTES, c.gemm_latency_s, None)
    return gemm_time(tokens, ctx.vocab_per_tp(p), a.hidden, ctx.chip.flops("bf16"), c.gemm_eff, ctx.chip.hbm_bw,
                     c.mem_eff, BF16_BYTES, c.gemm_latency_s, gemm_shape(c))


#: (forward, backward) HBM bytes per logit of each loss kernel (``cross_entropy_fusion``); derivations in
#: :func:`cross_entropy_bytes_per_logit`
CROSS_ENTROPY_BYTES_PER_LOGIT = {"none": (38.0, 14.0), "native": (22.0, 10.0), "te": (6.0, 4.0),
                                 "fp32_upcast": (22.0, 26.0), "torch_bf16": (8.0, 10.0)}


def cross_entropy_bytes_per_logit(impl: str) -> tuple[float, float]:
    """(forward, backward) HBM bytes the loss moves per logit (token x vocab entry on one chip), by loss kernel.

    Counted kernel by kernel, reads + writes, from the BF16 logits the head GEMM wrote (that write is the GEMM's)
    to the BF16 logit gradient the head's backward GEMM reads (that read is the GEMM's); per-token terms (target
    gathers, the max / sum all-reduces) are negligible against the vocab:

    * ``none``: Megatron-Core's unfused vocab-parallel cross entropy, the default without
      ``--cross-entropy-loss-fusion`` (NVIDIA/Megatron-LM megatron/core/tensor_parallel/cross_entropy.py at
      f2e5db40 / core_r0.8.0, one PyTorch op per line). Forward: ``vocab_parallel_logits.float()`` 2 + 4,
      ``torch.max(dim=-1)`` 4, in-place ``-= logits_max`` 4 + 4, ``torch.exp(out=)`` 4 + 4, ``.sum(dim=-1)`` 4,
      ``exp_logits.div_(sum)`` 4 + 4 = 38. Backward: ``grad_input.mul_(grad_output)`` 4 + 4, and autograd casts
      the fp32 gradient the Function returns to the BF16 input's dtype 4 + 2 = 14.
    * ``native``: Megatron-Core's fused version (megatron/core/fusions/fused_cross_entropy.py at f2e5db40): the
      same steps in three ``jit_fuser`` functions (torch.compile from PyTorch 2.2, megatron/core/jit.py), one pass
      each: logits max with the fp32 copy 2 + 4, subtract + exp + sum 4 + 4, the softmax division 4 + 4 = 22;
      backward ``calculate_gradients`` (in-place multiply written back 4 + 4, ``.to(torch.bfloat16)`` 2) = 10.
    * ``te``: Transformer Engine's Triton parallel cross entropy (transformer_engine/pytorch/triton/
      cross_entropy.py): ``online_softmax_kernel`` reads the BF16 logits once (2), ``cross_entropy_kernel`` reads
      them again and writes the gradient in place (2 + 2) = 6; backward ``element_mul_kernel`` scales it in place
      by the per-token grad_output (2 + 2) = 4.
    * ``fp32_upcast``: PyTorch's cross entropy on logits upcast to fp32 (torchtitan train.py ``loss_fn``,
      ``cross_entropy(pred.flatten(0, 1).float(), labels)``): ``.float()`` 2 + 4, ``log_softmax`` over a vocab
      too wide for shared memory (aten cunn_SoftMaxForward: a max pass 4, a sum-of-exp pass 4, the output
      4 + 4) = 22; backward ``nll_loss_backward`` writes a zero fp32 gradient 4, ``_log_softmax_backward_data``
      sums it 4 and writes ``grad - exp(out) x sum`` 4 + 4 + 4, the cast back to BF16 4 + 2 = 26 (counted
      without tensor parallelism; torchtitan's loss parallel shards the vocab over tp).
    * ``torch_bf16``: the same PyTorch kernels on the BF16 logits, no upcast (NeMo AutoModel
      nemo_automodel/components/loss/masked_ce.py ``MaskedCrossEntropy`` with ``fp32_upcast: false``, the loss of its
      MoE benchmark configs, 89e3a9fdd .. 809f1993: ``F.cross_entropy(logits, labels, reduction="sum")`` on the
      lm_head's BF16 output; the fp32 accumulation stays in registers): ``log_softmax`` max pass 2, sum-of-exp pass
      2, the output 2 + 2 = 8; backward ``nll_loss_backward``'s zero gradient 2, ``_log_softmax_backward_data``'s
      sum pass 2 and ``grad - exp(out) x sum`` 2 + 2 + 2 = 10 (no cast back).
    """
    try:
        return CROSS_ENTROPY_BYTES_PER_LOGIT[impl]
    except KeyError:
        raise ValueError(f"unknown cross_entropy_fusion {impl!r}: expected one of "
                         f"{', '.join(CROSS_ENTROPY_BYTES_PER_LOGIT)}") from None


def loss_time(ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """(forward, backward) time of the loss over one micro-batch's logits on one chip (the padded vocab split over
    tp, :meth:`~trainsim.perf.context.StepContext.vocab_per_tp`): tokens x that x
    :func:`cross_entropy_bytes_per_logit` over the HBM bandwidth, memory-bound."""
    f_b, b_b = cross_entropy_bytes_per_logit(ctx.cross_entropy_fusion)
    logits = tokens * ctx.vocab_per_tp(p)
    return hbm_time(logits * f_b, ctx), hbm_time(logits * b_b, ctx)


#: HBM bytes per head, query and key of the unfused attention core's score tensors, (forward, backward), with
#: attention dropout on (p > 0); derivations in :func:`unfused_score_bytes_per_token`
UNFUSED_SCORE_BYTES = (13.0, 19.0)
#: the part of :data:`UNFUSED_SCORE_BYTES` that is the attention-dropout pass, (forward, backward): absent at p = 0;
#: derivation in :func:`unfused_score_bytes_per_token`
UNFUSED_SCORE_DROPOUT_BYTES = (5.0, 5.0)
#: forward HBM bytes per head, query and key an unfused core with a score bias (ALiBi) adds: the bias written into
#: the score GEMM's output as its C input (2) and read back by the GEMM (2); derivation in
#: :func:`unfused_score_bytes_per_token`
UNFUSED_SCORE_BIAS_BYTES = 4.0


def unfused_score_bytes_per_token(lk: LayerKind, seq_len: int, backward: bool = False,
                                  attention_dropout: float = 0.1) -> float:
    """HBM bytes per token of an unfused attention core's s x s score tensors (scores materialised, Megatron-LM
    before flash attention: megatron/model/transformer.py ``CoreAttention``, ``torch.baddbmm`` for Q K^T, the fused
    ``scale_mask_softmax``, ``attention_dropout``, ``torch.bmm`` with V), per head and key, in BF16 / FP16:

    * forward: write the score (2), fused scale-mask-softmax read + write (4), dropout read + write + 1-byte mask
      (5), read by the AV batched GEMM (2) = 13 (Korthikanti et al. 2022 sec. 4.1 counts the same tensors: 5 a s^2 b
      bytes of stored activations);
    * backward (autograd through the same ops): the AV GEMM's input gradient dP = dO V^T written (2) and the saved
      dropout output read for dV = P^T dO (2); dropout backward reads dP and the mask and writes (2 + 1 + 2 = 5);
      the fused softmax backward reads its output gradient and the saved softmax output and writes the score
      gradient (6); the Q K^T GEMM's two input gradients dQ = dS K, dK = dS^T Q each read dS (4) = 19.

    A core with a score bias (``AttentionCore.score_bias``: ALiBi) adds it through the Q K^T GEMM's C input
    (bigscience-workshop/Megatron-DeepSpeed megatron/model/transformer.py at 8387ae17, the BLOOM code: the
    [b np, 1, s] BF16 ``alibi`` tensor is the ``input`` of ``torch.baddbmm(matmul_result, q, k^T, beta=1.0,
    alpha=1 / norm_factor)`` instead of ``torch.empty`` with beta 0): cuBLAS's batched GEMM computes
    C = alpha A B + beta C in place, so the broadcast bias is first written over the whole s x s output (2) and
    the GEMM reads it back (2): :data:`UNFUSED_SCORE_BIAS_BYTES` more in the forward; the bias takes no gradient,
    so the backward is unchanged.

    The dropout pass (:data:`UNFUSED_SCORE_DROPOUT_BYTES`, 5 each way) runs only at ``attention_dropout`` p > 0
    (the run's ``training.attention_dropout``, else its stack's launcher default, :func:`trainsim.frameworks.
    runtime_settings`): PyTorch's ``dropout`` launches nothing at p = 0 and returns its input
    (pytorch/pytorch aten/src/ATen/native/Dropout.cpp at 92426d68: ``is_fused_kernel_acceptable`` needs p > 0, and
    ``_dropout_impl`` returns ``input`` when p == 0), so the AV GEMM reads the softmax output itself and its backward
    reads dP as the softmax gradient: 2 + 4 + 2 = 8 forward, 2 + 2 + 6 + 4 = 14 backward.

    Both over the full s x s matrix (the causal mask is applied after computing every score). Returns
    ``UNFUSED_SCORE_BYTES`` (less the dropout bytes at p = 0, + the bias bytes) x heads x seq_len, summed over the
    layer's softmax attention cores.
    """
    d = 1 if backward else 0
    per = UNFUSED_SCORE_BYTES[d] - (UNFUSED_SCORE_DROPOUT_BYTES[d] if attention_dropout <= 0.0 else 0.0)
    return sum((per + (UNFUSED_SCORE_BIAS_BYTES if c.score_bias and not backward else 0.0)) * c.heads * seq_len
               for c in lk.attention if c.kind != "linear")


def _unfused_attention(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num, backward: bool) -> Num:
    """Unfused attention core of one layer (heads split over tp, :func:`core_tp_ranks`): the full s x s Q K^T and
    A V batched GEMMs (twice the causal FLOPs; the backward runs two GEMMs per forward one, input and weight-like
    gradients: 2 x) at ``gemm_eff``, plus :func:`unfused_score_bytes_per_token` over HBM."""
    fl = sum(_core_fwd_flops(c, ctx, p, tokens) for c in lk.attention)
    full = 2.0 * fl * ctx.seq_len / (ctx.seq_len + 1.0) * (2.0 if backward else 1.0)
    by = sum(unfused_score_bytes_per_token(replace(lk, attention=(c,)), ctx.seq_len, backward,
                                           ctx.attention_dropout) * tokens
             / core_tp_ranks(c, p) for c in lk.attention)
    return full / (ctx.chip.flops("bf16") * ctx.calib.gemm_eff) + hbm_time(by, ctx)


def core_tp_ranks(core: AttentionCore, p: Plans) -> Num:
    """Ranks one attention core's per-token work is split over: tp (heads split over the tensor-parallel group,
    Megatron-LM ``attention.py``: ``num_attention_heads_per_partition``), or 1 for a core every tp rank runs whole
    (``AttentionCore.tp_replicated``: the DSA lightning indexer, duplicated across tp ranks on the gathered
    sequence, :func:`trainsim.model.blocks.dsa_indexer`). The attention-core FLOPs (:func:`_core_fwd_flops`) and
    the unfused score bytes take their tp share here; a replicated core's kept q / k are an unsplit
    ``ActTensor`` (:func:`trainsim.perf.activations.activation_tensors`) and its RoPE bytes
    :func:`replicated_rope_bytes_per_token`."""
    return 1.0 if core.tp_replicated else p.tp


def attention_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Attention-core forward of one layer: heads split over tp, causal work split evenly over cp.

    flash: causal FLOPs at ``attn_eff`` of the BF16 peak, times the short-block factor L / (L + L0) of the key
    block L a kernel call sees (FlashAttention-2, Dao 2023, Fig. 4: tiles and the causal diagonal leave short
    blocks partly idle), per attention core: a full core sees L = seq_len / cp; a sliding-window or top-k
    (``sparse``) core, whose queries each attend ``mean_context`` keys (:func:`trainsim.model.counts.mean_context`),
    sees what a causal block of twice that many keys sees (a causal query attends half its block on average):
    L = min(2 x mean context, seq_len / cp). unfused: :func:`_unfused_attention`. Plus the DSA indexer's training
    loss where the stack runs it (:func:`dsa_indexer_loss_fwd`; forward only: its target is detached) and the
    part of the indexer's score gradient a fused kernel computes in the forward (:func:`dsa_indexer_score_grad`).
    """
    loss = dsa_indexer_loss_fwd(lk, ctx, p, tokens) + dsa_indexer_score_grad(lk, ctx, p, tokens)[0]
    if ctx.attention_kernel == "unfused":
        return _unfused_attention(lk, ctx, p, tokens, backward=False) + loss
    t: Num = loss
    for core in lk.attention:
        t = t + _core_fwd(core, ctx, p, tokens)
    return t


def _core_fwd_flops(core: AttentionCore, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward FLOPs of one attention core on one chip: its per-token FLOPs
    (:func:`trainsim.model.counts.attention_fwd_flops_per_token`) x the micro-batch's tokens / the ranks its heads
    split over (:func:`core_tp_ranks`: tp, or 1 for a replicated core)."""
    return attention_fwd_flops_per_token(core, ctx.seq_len) * tokens / core_tp_ranks(core, p)


def _core_fwd(core: AttentionCore, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Flash forward time of one attention core (:func:`attention_fwd`, its short-block factor L / (L + L0) with
    the kernel's L0, :func:`attention_block_l0`, and its head-dim factor, :func:`attention_head_dim_factor`)."""
    block = ctx.seq_len / p.cp
    rate = ctx.chip.flops("bf16") * attention_kernel_eff(ctx) * attention_head_dim_factor(core, ctx)
    fl = _core_fwd_flops(core, ctx, p, tokens)
    keys = block
    if core.kind in ("sliding", "sparse"):
        keys = np.minimum(2.0 * mean_context(core, ctx.seq_len), block)
    return fl / (rate * keys / (keys + attention_block_l0(ctx)))


#: backward / forward FLOPs of an attention core with d_qk = d_v: 5 matmuls (recomputed Q K^T, dV = P^T dO,
#: dP = dO V^T, dQ = dS K, dK = dS^T Q) against the forward's 2 (FlashAttention-2, Dao 2023, sec. 3.1.2); cuDNN
#: Frontend's DSA benchmark counts 2 s H K (3 d_qk + 2 d_v) against 2 s H K (d_qk + d_v): 2.5. The one statement
#: of the ratio: the flash backward (:func:`attn_bwd_ratio`) and the DSA backward (:func:`attention_bwd`) use it
ATTN_BWD_FLOPS_RATIO = 2.5


def attn_bwd_ratio(ctx: StepContext) -> float:
    """Flash-attention backward time / forward time at long blocks:

        ATTN_BWD_FLOPS_RATIO x forward / backward TFLOP/s of the step's kernel

    the backward's 5 matmuls against the forward's 2 (:data:`ATTN_BWD_FLOPS_RATIO`), each run at the backward's
    lower rate. The rate ratio is the chip family's native kernel's ``attn_bwd_rate_ratio`` (default 1.152: the
    FlashAttention-3 paper's FlashAttention-2 / cuDNN / FlashAttention-3 on H100 at 16K, 2.5 x 1.152 = 2.88;
    Hopper 1.218 and Blackwell 1.288 from NVIDIA's cuDNN SDPA sweeps, perf/data/constants.yaml), or
    ``attn_bwd_rate_ratio_flash2`` (370 / 322 = 1.149) where the step runs FlashAttention-2 on a chip it was not
    written for (:func:`runs_flash2_kernel`)."""
    c = ctx.calib
    return ATTN_BWD_FLOPS_RATIO * (c.attn_bwd_rate_ratio_flash2 if runs_flash2_kernel(ctx) else c.attn_bwd_rate_ratio)


def dsa_bwd_rate(ctx: StepContext, keys: float) -> float:
    """FLOP/s of the sparse-attention (DSA) backward kernel over per-query index lists of ``keys`` KV entries:

        peak_bf16 x dsa_bwd_eff x keys / (keys + dsa_bwd_k0)

    counting the kernel's 5 matmuls (recomputed scores, dV, dP, dQ, dK) as 2 x heads x keys x (3 d_qk + 2 d_v)
    per query, :data:`ATTN_BWD_FLOPS_RATIO` x the forward's 2 x heads x keys x (d_qk + d_v) at d_qk = d_v. Both
    constants are NVIDIA's measurements of cuDNN Frontend's DSA backward, the kernel Megatron-Core's DeepSeek-V4
    attention calls
    (perf/data/constants.yaml): 0.306 of the GB200's peak at DeepSeek-V4-Flash's K = 640, half rate at K = 170
    (B200 sweep, K 128-2048). Example: GB200 (2,500 TFLOP/s), K = 640: 2500 x 0.306 x 640 / 810 = 604 TFLOP/s,
    the measured 603.6; K = 128: 329 TFLOP/s."""
    c = ctx.calib
    return ctx.chip.flops("bf16") * c.dsa_bwd_eff * keys / (keys + c.dsa_bwd_k0)


def dsa_call_keys(core: AttentionCore, seq_len: int) -> float:
    """KV entries per query in the index list of the DSA call a core belongs to (``AttentionCore.dsa_keys``):
    ``dsa_keys + dsa_keys_per_token x seq_len`` (DeepSeek-V4-Flash at 4,096 tokens: CSA 128 + 512 = 640, HCA
    128 + 4096 / 128 = 160, sliding 128)."""
    return core.dsa_keys + core.dsa_keys_per_token * seq_len


def attention_bwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Attention-core backward of one layer. flash: :func:`attn_bwd_ratio` x :func:`attention_fwd`
    (FlashAttention-2, Dao 2023, sec. 3.1.2: the backward recomputes the scores and runs 5 matmuls against the
    forward's 2, at the kernel's lower backward rate: 2.5 x 1.152 = 2.88 by default).
    A core run by a sparse-attention (DSA) kernel (``AttentionCore.dsa_keys`` > 0: DeepSeek-V4's window and
    compressed cores): :data:`ATTN_BWD_FLOPS_RATIO` x its forward FLOPs at :func:`dsa_bwd_rate` of its
    call's index-list length (:func:`dsa_call_keys`), one rate for all the cores of the call.
    unfused: the stored probabilities are not recomputed: twice the score GEMMs and the backward score bytes
    (:func:`_unfused_attention`, :func:`unfused_score_bytes_per_token`).
    The DSA lightning indexer (a ``tp_replicated`` core) has no backward of its own: its inputs are detached and
    its top-k is not differentiable, so only the indexer loss's score gradient reaches it, priced by
    :func:`dsa_indexer_score_grad` (its backward part here)."""
    grad = dsa_indexer_score_grad(lk, ctx, p, tokens)[1]
    if ctx.attention_kernel == "unfused":
        rest = tuple(c for c in lk.attention if not c.tp_replicated)
        return _unfused_attention(replace(lk, attention=rest), ctx, p, tokens, backward=True) + grad
    t: Num = grad
    for core in lk.attention:
        if core.tp_replicated:
            continue
        if core.dsa_keys > 0:
            fl = _core_fwd_flops(core, ctx, p, tokens)
            t = t + ATTN_BWD_FLOPS_RATIO * fl / dsa_bwd_rate(ctx, dsa_call_keys(core, ctx.seq_len))
        else:
            t = t + attn_bwd_ratio(ctx) * _core_fwd(core, ctx, p, tokens)
    return t


#: FP32 bytes per (query, selected key) of the element-wise passes of Megatron-LM's sparse indexer loss over its
#: [b, sq, topk] tensors (d98e8a64 dsa_cudnn_kernels.py ``_compute_sparse_indexer_loss_and_grads``): masked
#: log-softmax of the indexer scores (read, write: 8), ``.exp()`` and ``masked_fill`` (2 x read + write: 16), the
#: target written by the recompute kernel (4), ``target.masked_fill_`` (8), ``normalize_indexer_target`` (row sum
#: read, divide read + write: 12), the second ``masked_fill_`` (8), the KL reading target and log-probabilities (8)
DSA_SPARSE_LOSS_BYTES = 64.0
#: bytes per (head, query, key) of MindSpeed-LLM's unfused target (c77308a1 dsa_indexer.py ``get_attn_scores``):
#: ``baddbmm`` writes the BF16 scores (2), ``masked_fill_`` reads and writes them (4), the FP32 softmax reads BF16
#: and writes FP32 (6), ``sum(dim=1)`` over heads reads the FP32 probabilities (4)
DSA_DENSE_LOSS_BYTES = 16.0


def dsa_loss_teacher(lk: LayerKind) -> AttentionCore | None:
    """The main attention core whose scores a layer's DSA indexer loss recomputes: the layer's ``sparse`` core
    when the layer also runs an indexer (a ``tp_replicated`` core: a layer that computes its own top-k; a GLM-5.2
    'shared' layer reuses another's and has no loss, Megatron-LM dsa.py ``use_indexer_loss ... and
    computes_topk``), else None."""
    if not any(c.tp_replicated for c in lk.attention):
        return None
    return next((c for c in lk.attention if c.kind == "sparse" and not c.tp_replicated), None)


def dsa_loss_keys(core: AttentionCore, ctx: StepContext) -> float:
    """Keys per query row the DSA indexer loss covers (the last axis of its target): the main attention's top-k,
    min(top-k, s), on the ``sparse`` path (Megatron-LM d98e8a64 ``_compute_sparse_indexer_loss_and_grads``, the
    [b, sq, topk] target), every key s on MindSpeed-LLM's ``dense`` / ``dense_local`` paths (``get_attn_scores``,
    [b, sq, sk]). The one reading of that width for the loss's FLOP/byte count (:func:`dsa_indexer_loss_work`),
    its tp all-reduce (:func:`trainsim.perf.comm_tp.dsa_loss_allreduce_fwd`) and its working memory
    (:func:`trainsim.perf.memory.dsa_loss_working_bytes`)."""
    s = float(ctx.seq_len)
    return float(min(core.window or s, s)) if ctx.dsa_indexer_loss == "sparse" else s


def dsa_indexer_loss_work(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """FLOPs and HBM bytes on one chip of one layer's DSA indexer training loss per micro-batch (DeepSeek-V3.2-Exp
    report sec. 2.1: KL between the indexer's distribution and the head-summed main attention distribution), by
    the stack's path (``StepContext.dsa_indexer_loss``, the profile's ``dsa_indexer_loss``; 0 for ``none`` or a
    layer without an indexer, :func:`dsa_loss_teacher`). The main attention's heads are split over tp
    (:func:`core_tp_ranks`), the query rows are every token of the micro-batch on every tp rank; the key width d
    is the absorbed MLA key ``kv_elems_per_token`` (latent + rope key, Megatron-Bridge flop_utils.py
    ``absorbed_qk_dim``).

    * ``sparse`` (Megatron-LM d98e8a64 ``_compute_sparse_indexer_loss_and_grads``, the cuDNN path GLM-5's
      Megatron-Bridge recipes select): the scores recomputed over the selected keys only, forward only, reusing
      the forward's log-sum-exp: 2 x (H / tp) x mean_context(top-k) x d FLOPs per token (Megatron-Bridge
      067f987d training/utils/flop_utils.py ``indexer_teacher_term``), :data:`DSA_SPARSE_LOSS_BYTES` x top-k
      bytes per token.
    * ``dense`` / ``dense_local`` (MindSpeed-LLM 8aaf6085 / c77308a1 ``get_attn_scores``, unfused; they differ
      only in the tp all-reduce, :func:`trainsim.perf.comm_tp.dsa_loss_allreduce_fwd`): ``baddbmm`` over every
      key of the sequence (the causal mask applied after): 2 x (H / tp) x s x d FLOPs,
      :data:`DSA_DENSE_LOSS_BYTES` x (H / tp) x s bytes per token.

    Example (test): H 8, d 96, top-k 16, s 64, tp 2, 128 tokens, sparse: mean context 16 - 16 x 15 / 128 =
    14.125, FLOPs 2 x 4 x 14.125 x 96 x 128 = 1,388,544, bytes 64 x 16 x 128 = 131,072."""
    z = 0.0 * np.asarray(tokens, dtype=np.float64)
    core = dsa_loss_teacher(lk)
    if ctx.dsa_indexer_loss == "none" or core is None:
        return z, z
    d = float(core.kv_elems_per_token)
    heads = core.heads / core_tp_ranks(core, p)
    if ctx.dsa_indexer_loss == "sparse":
        return (2.0 * heads * mean_context(core, ctx.seq_len) * d * tokens + z,
                DSA_SPARSE_LOSS_BYTES * dsa_loss_keys(core, ctx) * tokens + z)
    keys = dsa_loss_keys(core, ctx)
    return 2.0 * heads * keys * d * tokens + z, DSA_DENSE_LOSS_BYTES * heads * keys * tokens + z


def dsa_indexer_loss_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward time of one layer's DSA indexer loss per micro-batch (:func:`dsa_indexer_loss_work`): ``sparse``
    runs its FLOPs at the flash forward rate of the main sparse core (:func:`_core_fwd`: a sparse-attention
    forward kernel over the same selected keys, without the value product), ``dense(_local)`` at ``gemm_eff`` (a
    ``baddbmm``, as :func:`_unfused_attention`); plus the bytes over HBM (:func:`hbm_time`)."""
    fl, by = dsa_indexer_loss_work(lk, ctx, p, tokens)
    core = dsa_loss_teacher(lk)
    if ctx.dsa_indexer_loss == "none" or core is None:
        return fl
    if ctx.dsa_indexer_loss == "sparse":
        s_per_flop = _core_fwd(core, ctx, p, tokens) / _core_fwd_flops(core, ctx, p, tokens)
        return fl * s_per_flop + hbm_time(by, ctx)
    return fl / (ctx.chip.flops("bf16") * ctx.calib.gemm_eff) + hbm_time(by, ctx)


def dsa_indexer_core(lk: LayerKind) -> AttentionCore | None:
    """The layer's DSA lightning-indexer score core (the ``tp_replicated`` core
    :func:`trainsim.model.blocks.dsa_indexer` builds), or None for a layer without an indexer of its own."""
    return next((c for c in lk.attention if c.tp_replicated), None)


def dsa_indexer_score_grad(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """(forward, backward) time per micro-batch of the gradient of one layer's DSA indexer scores, the indexer's
    only backward besides its projections' weight gradients (:func:`layer_gemm_bwd`). Both stacks detach the
    indexer's inputs (Megatron-LM d98e8a64 experimental_attention_variant/dsa.py ``x = x.detach()``,
    ``qr = qr.detach()``; MindSpeed-LLM c77308a1 multi_latent_attention.py ``dsa_hidden_states.detach()``,
    ``dsa_q_compressed.detach()``) and the top-k selection passes no gradient, so the gradient reaching the scores
    is the indexer loss's alone (DeepSeek-V3.2-Exp report sec. 2.1). It is dQ_I = dS K_I and dK_I = dS^T Q_I: two
    matmuls of the forward's shape over the score entries the loss touches, 2 x the indexer's forward score FLOPs
    over those entries (Megatron-Bridge 067f987d training/utils/flop_utils.py: ``index_score_term`` adds
    ``4 x score_grad_context x H_I (d_I + 1)`` to the forward's ``2 x dense_causal_context x H_I (d_I + 1)``).
    By the stack's path (``StepContext.dsa_indexer_loss``):

    * ``none``: 0 (Megatron-LM dsa.py runs the indexer under ``torch.no_grad()`` without the loss).
    * ``sparse`` (Megatron-LM's cuDNN path, the one GLM-5's Megatron-Bridge recipes select): over the selected
      top-k pairs only (flop_utils.py ``score_grad_context = sparse_causal_context``): 2 x the flash forward time
      of the indexer core at the main attention's top-k (:func:`_core_fwd` of it as a ``sparse`` core). A fused
      kernel computes it in the forward with the loss (dsa_cudnn_kernels.py ``FusedQKTopKWithSparseLossFunc`` and
      ``FusedIndexerSparseAttnFunc``: the backward only scales ``precomputed_grad_q_indexer`` /
      ``_k_indexer`` / ``_weights``); on the ``unfused`` attention backend Megatron-LM takes the reference path
      (dsa.py ``FusedDSAIndexerLoss``, whose backward recomputes them): the backward.
    * ``dense`` / ``dense_local`` (MindSpeed-LLM, unfused): autograd through ``bf16_index``'s
      ``torch.matmul(query, key)`` over every key (dsa_indexer.py at c77308a1): the loss reads only the top-k
      scores (``compute_dsa_indexer_loss(main_attn_dist, topk_score, ...)``), but the matmul's backward GEMMs run
      over the whole [s, s] score gradient: 2 x the indexer core's forward time, in the backward.

    Example (test): indexer H_I 4 x d_I 32, top-k 16, s 64, 128 tokens: forward score FLOPs per token
    2 x 4 x 32 x 32.5 = 8,320 (dense), 2 x 4 x 32 x 14.125 = 3,616 (top-k); gradient FLOPs 2 x 128 x those."""
    z = 0.0 * np.asarray(tokens, dtype=np.float64)
    idx, teacher = dsa_indexer_core(lk), dsa_loss_teacher(lk)
    if ctx.dsa_indexer_loss == "none" or idx is None or teacher is None:
        return z, z
    if ctx.dsa_indexer_loss == "sparse":
        t = 2.0 * _core_fwd(replace(idx, kind="sparse", window=teacher.window), ctx, p, tokens) + z
        return (z, t) if ctx.attention_kernel == "unfused" else (t, z)
    return z, 2.0 * _core_fwd(idx, ctx, p, tokens) + z


#: backward / forward time of the DSA indexer's projections (``indexer.*`` GEMMs) by indexer-loss path. The inputs
#: are detached (:func:`dsa_indexer_score_grad`), so there is never an input gradient; with a loss each projection
#: runs its weight gradient, one GEMM per forward one (Megatron-Bridge 067f987d training/utils/flop_utils.py:
#: ``indexer_projection_multiplier = 4 if trains_indexer else 2``, "each projection therefore executes
#: forward+wgrad (2x forward), not forward+dgrad+wgrad (3x). Without the loss, top-k is computed under no_grad")
DSA_INDEXER_PROJ_BWD = {"none": 0.0, "sparse": 1.0, "dense": 1.0, "dense_local": 1.0}


def layer_gemm_bwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num, fwd: Num) -> Num:
    """Backward GEMM time of one layer per micro-batch per chip, given its forward ``fwd`` (:func:`layer_gemm_fwd`,
    already priced by the caller): the input- and weight-gradient GEMMs, 2 x ``fwd``, except the DSA indexer's
    projections (the ``indexer.*`` matrices of a layer with an indexer core, :func:`dsa_indexer_core`), which take
    :data:`DSA_INDEXER_PROJ_BWD` x their forward: 2 x fwd - (2 - DSA_INDEXER_PROJ_BWD[path]) x indexer fwd."""
    t = 2.0 * fwd
    if dsa_indexer_core(lk) is None:
        return t
    sub = tuple(m for m in lk.matrices if m.name.startswith("indexer."))
    return t - (2.0 - DSA_INDEXER_PROJ_BWD[ctx.dsa_indexer_loss]) * layer_gemm_fwd(replace(lk, matrices=sub), ctx,
                                                                                 p, tokens)


def runs_flash2_kernel(ctx: StepContext) -> bool:
    """Whether the step's attention kernel is FlashAttention-2 on a chip family it was not written for: 'flash2'
    on a family of ``attn_eff_flash2_families`` (Hopper, Blackwell: FlashAttention-2 uses Ampere's mma.sync, not
    warp-group / tcgen05 MMA and TMA; FlashAttention-3 paper, Shah et al. 2024, sec. 1). Elsewhere 'flash2' is the
    family's native kernel."""
    return ctx.attention_kernel == "flash2" and ctx.chip.family in ctx.calib.attn_eff_flash2_families


def attention_kernel_eff(ctx: StepContext) -> float:
    """Fraction of the dense BF16 peak the step's flash-attention kernel reaches on long blocks.

    'flash' (the chip generation's native kernel) runs at ``attn_eff``, a per-family catalog value measured on the
    kernel the family's stacks run (perf/data/constants.yaml: Hopper and Blackwell from NVIDIA's cuDNN SDPA sweeps,
    the kernel Transformer Engine selects there; Ascend from torch_npu's fused attention; the default from the
    FlashAttention-2 / -3 papers). FlashAttention-2 on a family it was not written for (:func:`runs_flash2_kernel`)
    reaches ``attn_eff_flash2`` (Hopper 0.35: FlashAttention-3 paper, abstract; Blackwell 0.177: cuDNN Frontend's
    GB200 sweep of PyTorch's FlashAttention-2 backend), never more than the native kernel.
    """
    c = ctx.calib
    if runs_flash2_kernel(ctx):
        return min(c.attn_eff, c.attn_eff_flash2)
    return c.attn_eff


def attention_head_dim_factor(core: AttentionCore, ctx: StepContext) -> float:
    """Share of the kernel's head-dim-``attn_vec_ref_head_dim`` rate (``attn_eff``) a softmax attention core of
    head dim d reaches where the kernel's softmax runs on vector units beside the matrix unit:

        1 / max(1, attn_vec_fixed_ratio x d_ref / d + attn_vec_out_ratio),   d = (d_qk + d_v) / 2

    Per tile of scores the matrix unit's work (Q K^T and P V) grows with d, the vector unit's softmax (row max,
    exp, row sum, cast: ``attn_vec_fixed_ratio`` of the matrix time at d_ref) does not, and its output rescale
    (``attn_vec_out_ratio``) grows with d; the two units run as a pipeline, so a tile takes the longer of the two
    and below the crossover the kernel is vector-bound: its FLOP rate falls in proportion to d. Ascend 910
    (dav-c220: one cube and two vector cores per AI core): 0.6063 and 0.2031 at d_ref 128, the stage cycles of the
    PTO flash-attention cost model (cann/pto-isa kernels/manual/common/flash_atten/scripts/fa_cost_model.py
    ``FitConstants``, perf/data/constants.yaml), so d = 128 is cube-bound (factor 1, the 0.40 measured there), the
    crossover is d = 97 and d = 64 reaches 0.5 / (0.6063 + 0.1016) = 0.706 of the d = 128 rate. The backward (5 matmuls
    against the recomputed exp and dS = P (dP - D) on the vector units, FlashAttention-2 sec. 3.1.2) takes the same
    factor (assumption). Elsewhere both ratios are 0 (no head-dim term measured): factor 1. Only softmax flash
    cores take it: a linear-attention core (no softmax), a score-only core without values (``v_head_dim`` 0: the DSA
    lightning indexer, ReLU-weighted scores, no softmax or P V) and a core run by a sparse-attention (DSA) kernel
    (``dsa_keys`` > 0, its own measured rates) take 1."""
    c = ctx.calib
    d = 0.5 * (core.qk_head_dim + core.v_head_dim)
    if core.kind == "linear" or core.v_head_dim <= 0 or core.tp_replicated or core.dsa_keys > 0 or d <= 0:
        return 1.0
    return 1.0 / max(1.0, c.attn_vec_fixed_ratio * c.attn_vec_ref_head_dim / d + c.attn_vec_out_ratio)


def attention_block_l0(ctx: StepContext) -> float:
    """Half-saturation key-block length L0 of the step's flash-attention kernel, in the short-block factor
    L / (L + L0) (:func:`attention_fwd`): the family's native kernel's ``attn_block_l0`` (default 384 from
    FlashAttention-2 Fig. 4; Hopper 1,135 and Blackwell 1,215 fitted with ``attn_eff`` to NVIDIA's cuDNN SDPA
    sweeps, perf/data/constants.yaml), or ``attn_block_l0_flash2`` where the step runs FlashAttention-2 on a family
    it was not written for (:func:`runs_flash2_kernel`)."""
    c = ctx.calib
    return c.attn_block_l0_flash2 if runs_flash2_kernel(ctx) else c.attn_block_l0


def attention_fwd_flops(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward attention-core FLOPs per chip of ``tokens`` tokens of one layer: :func:`_core_fwd_flops` summed over
    its cores (each core's heads split over :func:`core_tp_ranks`)."""
    return sum(_core_fwd_flops(c, ctx, p, tokens) for c in lk.attention)


NORM_BYTES_PER_H = 4.0   # one norm reads and writes h BF16 values
ROPE_BYTES = 4.0         # fused rotary: read + write one BF16 q / k element
EAGER_NORM_BYTES_PER_H = 36.0   # PyTorch-op RMSNorm with an fp32 upcast (elementwise_bytes_per_token)
EAGER_ROPE_BYTES = 20.0         # PyTorch-op complex rotary with an fp32 upcast, per q / k element


def norm_rope_bytes(eager: bool) -> tuple[float, float]:
    """(bytes per hidden element of one norm, bytes per rotated q / k element) of fused kernels or of eager
    PyTorch ops (derivations in :func:`elementwise_bytes_per_token`); the forward and its recomputation
    (perf/recompute.py) read them here."""
    return (EAGER_NORM_BYTES_PER_H, EAGER_ROPE_BYTES) if eager else (NORM_BYTES_PER_H, ROPE_BYTES)


def act_fn_bytes_per_f(act: str, eager: bool = False, relu2_unfused: bool = False) -> float:
    """HBM bytes per intermediate element of an activation function in the forward pass: SwiGLU reads 2f and
    writes f (6 per f; eager ``F.silu(w1 x) * w3 x``, two kernels: 10 per f, :func:`elementwise_bytes_per_token`;
    also a stack that runs Megatron-Core's MLP.forward ``glu`` unfused, run setting ``activation_fusion`` false:
    ``activation_func(x[0]) * x[1]`` after ``torch.chunk``, the activation reading and writing f (4) and the product
    reading 2f and writing f (6), megatron/core/transformer/mlp.py at core_r0.6.0; a GeGLU model is counted as
    ``swiglu``, the same matrices and bytes),
    GELU reads and writes f (4 per f, one kernel either way); squared ReLU fused (Megatron-LM's ``@jit_fuser``
    ``squared_relu``, megatron/training/activations.py at core_r0.8.0 and megatron/core/activations.py at d98e8a6)
    reads and writes f, 4 per f, but as the two PyTorch ops ``torch.pow(F.relu(x), 2)`` without a fuser (``eager``,
    or a stack whose ``relu2_unfused`` profile flag says it calls it so: NeMo's nemo/collections/llm/fn/activation.py
    at v2.2.0 / v2.3.0, '# @torch.jit.script # remove until we have serialization'; NeMo 1.x
    nemo/collections/nlp/modules/common/megatron/utils.py at r2.0.0rc1; Megatron-Bridge v0.2.0 / v0.3.0
    nemotron_provider.py) relu reads and writes f and pow reads and writes f again: 8 per f. Backward by op count
    (relu's threshold_backward 6, pow's ``grad * (2 * x.pow(1))`` 14: 20 per f) is charged, like every
    memory-bound kernel, as twice the forward (perf/step.py), 16."""
    if act == "swiglu":
        return 10.0 if eager else 6.0
    if act == "relu2" and (eager or relu2_unfused):
        return 8.0
    return 4.0


#: HBM bytes per element of each sublayer output that hidden (residual) dropout adds to the fused bias-dropout-add,
#: (forward, backward); derivation in :func:`residual_bytes_per_token`
HIDDEN_DROPOUT_BYTES = (1.0, 5.0)


def residual_bytes_per_token(streams: int, hidden: int, training: bool = True, hidden_dropout: float = 0.0) -> float:
    """HBM bytes one token moves through one layer's residual connections, as the forward-pass figure the engine
    charges once forward and twice backward (perf/step.py) (BF16, 2 bytes an element).

    Plain residual (``streams`` 1): 2 adds (2 reads + 1 write of h): 12h, training or not.

    Hidden dropout (``hidden_dropout`` p > 0, training only; the run's ``training.hidden_dropout``, else its stack's,
    :func:`trainsim.frameworks.runtime_settings`): each sublayer's output passes through dropout inside Megatron's
    fused bias-dropout-add, ``residual + dropout(x + bias)`` (NVIDIA/Megatron-LM v2.5 e269e20064
    megatron/model/transformer.py ``bias_dropout_add_fused_train``, ``torch.jit.script``; Megatron-Core
    megatron/core/fusions/fused_bias_dropout.py ``_bias_dropout_add_func`` at d98e8a64dd, ``jit_fuser``), one
    kernel per sublayer: the forward also writes the 1-byte mask (torch ``native_dropout`` returns a bool mask),
    and the backward, where at p = 0 the add's gradient passes to both branches with no kernel, runs the mask
    multiply: reads the output gradient (2) and the mask (1), writes the sublayer's gradient (2).
    :data:`HIDDEN_DROPOUT_BYTES` = (1, 5) per element, two sublayers (attention, MLP): F = 2h, B = 10h more, and as
    with the hyper-connections below training takes (F + B) / 3 = 4h in this figure. At p = 0 PyTorch's dropout
    returns its input (pytorch/pytorch aten/src/ATen/native/Dropout.cpp at 92426d68, ``_dropout_impl``): nothing.

    Manifold-constrained hyper-connections (DeepSeek-V4 ``hc_mult`` = n streams, the residual is n x h wide), as
    Megatron-Core runs them with ``use_fused_mhc`` (Megatron-LM 43e45e1307, the dev pin of Megatron-Bridge v0.6.0,
    whose DSv4 recipes set ``use_fused_mhc`` on Blackwell: megatron/core/transformer/hyper_connection.py
    ``HyperConnectionModule._forward_normal`` and ``fused_h_res_h_post_bda``; kernels of
    megatron/core/fusions/fused_mhc_kernels.py, Triton where it has one, else cuTile: cuda-tile 1.5.0 is in
    Megatron-Bridge v0.6.0's uv.lock), per sublayer (attention, MoE), in elements of h:

    * forward F: ``h_aggregate`` (Triton ``_triton_h_agg_fwd_kernel``) reads the n h residual and writes the
      sublayer's h input, n + 1; ``h_post_bda`` (``_triton_hpb_fwd_kernel``: H_res residual mix + H_post expansion
      + bias-dropout-add) reads the n h residual and the sublayer's h output and writes n h, 2n + 1: 3n + 2;
    * backward B: ``h_post_bda``'s two Triton kernels, ``_triton_hpb_bwd_g_x_orig_kernel`` (reads the n h output
      gradient, writes the residual's n h and the sublayer output's h gradients, 2n + 1) and
      ``_triton_hpb_bwd_g_hp_hr_kernel`` (reads the output gradient, the residual and the sublayer output for the
      H_post / H_res gradients, 2n + 1); ``h_aggregate``'s cuTile ``_ct_h_agg_bwd_kernel`` (reads the h input
      gradient and the n h residual, writes the n h residual gradient, 2n + 1); ``BroadcastTensorFused.backward``
      sums the residual's three n h gradients (mapping projection, aggregate, residual mix) with
      ``native_fused_add_3`` (torch.compile ``a + b + c``, the one kernel the module always uses), 4n: 10n + 3.

    The mapping projection's reads of the residual (``proj_rms_compute_h`` and its fused ``grad_x`` / ``grad_weight``
    backward) are the roofline of the layer's ``hc.*`` GEMMs (:func:`gemm_time`), not counted here; the 4 x 4
    Sinkhorn projection of H_res moves per token 16 elements, none of them h-wide. Two sublayers per layer:
    F = 2 x 2 (3n + 2) h = (12n + 8) h, B = 2 x 2 (10n + 3) h = (40n + 12) h; n = 4: 56h forward, 172h backward.
    Serving (``training`` False) takes F; training takes (F + B) / 3, which the engine's forward + twice-forward
    backward sums to F + B exactly (as :func:`elementwise_bytes_per_token` does with the backward FP8 casts):
    (52n + 20) h / 3, 76h at n = 4, against the plain 12h.
    """
    if streams < 1:
        raise ValueError(f"residual streams must be >= 1, got {streams}")
    drop = (2.0 * sum(HIDDEN_DROPOUT_BYTES) * hidden / 3.0) if training and hidden_dropout > 0.0 else 0.0
    if streams == 1:
        return 12.0 * hidden + drop
    fwd = (12.0 * streams + 8.0) * hidden
    if not training:
        return fwd
    return (fwd + (40.0 * streams + 12.0) * hidden) / 3.0 + drop


def rope_bytes_per_token(lk: LayerKind, bytes_per_elem: float = ROPE_BYTES) -> float:
    """HBM bytes one token moves through a layer's rotary embeddings in the forward pass: ``bytes_per_elem``
    (fused kernel: read + write BF16, 4; eager PyTorch: :data:`EAGER_ROPE_BYTES`) x the q and k elements each
    attention core rotates (:attr:`AttentionCore.rotated_qk_elems_per_token`), plus the bytes the rotary kernel
    copies without rotating them (``AttentionCore.rope_copy_bytes``: MLA's KV split).

    Only the rotated elements pay: MLA rotates ``qk_rope_head_dim`` of each query head and ONE shared rope key
    per token (DeepSeek-V2, arXiv 2405.04434 sec. 2.1.3, decoupled RoPE; Megatron-LM d48bd6be0a
    multi_latent_attention.py: ``k_pos_emb`` [tokens, 1, qk_pos_emb_head_dim] rotated, then expanded); partial
    rotary rotates ``rotary_dim`` of each head (HF ``partial_rotary_factor`` / GPT-NeoX ``rotary_pct``); NoPE
    layers and learned / ALiBi positions rotate nothing.
    """
    return sum(bytes_per_elem * core.rotated_qk_elems_per_token + core.rope_copy_bytes for core in lk.attention)


#: HBM bytes per rotated q / k element of Megatron-Core's unfused rotary embedding (``apply_rope_fusion`` false:
#: megatron/core/models/common/embeddings/rope_utils.py ``_apply_rotary_pos_emb_bshd`` and ``_rotate_half`` at
#: Megatron-LM 847781764f), one BF16 kernel per op: ``t * cos_`` (read + write, 4), ``_rotate_half`` = negation of
#: one half (2) and ``torch.cat((-x2, x1))`` (4), ``* sin_`` (4), the sum (read 2, write 1: 6) and
#: ``torch.cat((t, t_pass))`` (4): 24, against the fused kernel's 4 (:data:`ROPE_BYTES`).
UNFUSED_ROPE_BYTES = 24.0


def unfused_rope_extra_bytes_per_token(lk: LayerKind) -> float:
    """HBM bytes one token moves in a layer's forward through Megatron-Core's unfused rotary path beyond the fused
    kernels :func:`rope_bytes_per_token` prices:

        sum over cores of (UNFUSED_ROPE_BYTES - ROPE_BYTES) x rotated q / k elements + unfused_rope_copy_bytes

    (:data:`UNFUSED_ROPE_BYTES`; ``AttentionCore.unfused_rope_copy_bytes``: MLA's query concatenation and
    de-interleave, :func:`trainsim.model.blocks.mla_attention`). DeepSeek-V2 (128 heads, d_nope 128, d_rope 64):
    20 x (128 x 64 + 64) + 4 x (128 x 192 + 129 x 64) = 165,120 + 131,328 = 296,448 bytes. Charged where a run
    states ``rope_fusion: false`` (Primus's deepseek_v2_base.yaml sets ``apply_rope_fusion: false``); the backward
    by the engine's rule for memory-bound kernels (twice the forward, perf/step.py)."""
    return sum((UNFUSED_ROPE_BYTES - ROPE_BYTES) * core.rotated_qk_elems_per_token + core.unfused_rope_copy_bytes
               for core in lk.attention)


#: bytes of scale per quantised element of one usage (rowwise or columnwise): MXFP8 one E8M0 byte per 1 x 32
#: block (OCP Microscaling Formats (MX) v1.0 sec. 5; TE transformer_engine/pytorch/csrc/quantizer.cpp
#: MXFP8Quantizer::get_scale_shape, MXFP8_BLOCK_SIZE 32); blockwise one fp32 per 1 x 128 block (DeepSeek-V3,
#: arXiv 2412.19437 sec. 3.3.2; TE Float8BlockQuantizer); per-tensor recipes one scale per tensor (0 per element)
FP8_SCALE_BYTES_PER_ELEM = {"delayed": 0.0, "current": 0.0, "mxfp8": 1.0 / 32.0, "blockwise": 4.0 / 128.0}


def fp8_cast_bytes_per_elem(recipe: str, columnwise_copy: bool) -> float:
    """HBM bytes that quantising one BF16 GEMM-input element to FP8 moves, by scaling recipe.

    Every recipe reads the element (2 bytes) and writes its FP8 rowwise copy (1 byte) plus the scales
    (:data:`FP8_SCALE_BYTES_PER_ELEM`). ``columnwise_copy``: the backward's GEMMs also need the tensor in a second
    layout, written by the same kernel (1 byte and its scales again). Transformer Engine docs,
    features/low_precision_training/performance_considerations ('Handling transposes'; TransformerEngine
    d0067d0d): on Hopper an FP8 tensor's columnwise usage is a physical transpose, on Blackwell a per-tensor FP8
    tensor serves both usages, and a block-scaled tensor (MXFP8, blockwise) always needs separate rowwise and
    columnwise data because its scales run along one direction (docs/features/low_precision_training/mxfp8).

    * ``delayed``: the scale comes from the amax history and the cast kernel records the amax as it goes (TE
      transformer_engine/pytorch/csrc/quantizer.cpp ``Float8Quantizer::quantize``: one ``nvte_quantize_v2``):
      2 + 1 = 3 bytes, 4 with a columnwise copy.
    * ``current``: the scale comes from this tensor's amax, so the input is read once more before the cast
      (``Float8CurrentScalingQuantizer::quantize_impl``: ``nvte_compute_amax_with_config``, then
      ``nvte_compute_scale_from_amax``, then ``nvte_quantize_v2``): 2 + 2 + 1 = 5 bytes, 6 with a columnwise copy.
    * ``mxfp8``: one pass writes both usages with their E8M0 scales (``MXFP8Quantizer::quantize``, one
      ``nvte_quantize_v2``; transformer_engine/common/cast/mxfp8/quantize_mxfp8.cuh): 2 + 2 x (1 + 1/32) = 4.0625.
    * ``blockwise``: 1 x 128 blocks along each direction with fp32 scales (``Float8BlockQuantizer::quantize``):
      2 + 2 x (1 + 4/128) = 4.0625.

    A producer kernel that writes FP8 itself (TE's fused norm / activation for delayed and MXFP8 scaling,
    extensions/normalization.cpp Impl::FULLY_FUSED) would save part of this; the engine charges every GEMM
    input the stand-alone cast (:func:`elementwise_bytes_per_token`)."""
    if recipe not in FP8_SCALE_BYTES_PER_ELEM:
        raise ValueError(f"expected an FP8 recipe ({', '.join(FP8_SCALE_BYTES_PER_ELEM)}), got {recipe!r}")
    copies = 2.0 if (columnwise_copy or recipe in BLOCK_SCALED_RECIPES) else 1.0
    amax_pass = 2.0 if recipe == "current" else 0.0
    return 2.0 + amax_pass + copies * (1.0 + FP8_SCALE_BYTES_PER_ELEM[recipe])


def fp8_cast_elems_per_token(lk: LayerKind, separate: tuple[str, ...] = (),
                             training: bool = True) -> tuple[float, float]:
    """(forward, backward) elements one token's FP8 casts quantise in a layer: the distinct GEMM inputs
    (sum of K) and the GEMM output gradients (sum of N), each x ``active`` (routed experts), the router excluded
    (it stays in BF16), over the stack's GEMMs (:func:`gemm_matrices` with ``separate``).

    A Linear's forward casts its input, its backward the incoming output gradient dY once for both of its GEMMs
    (dgrad reads dY rowwise, wgrad columnwise; the input was saved cast for wgrad): Transformer Engine docs,
    features/low_precision_training/performance_considerations, Table 2 (TransformerEngine d0067d0d). Matrices
    that share their input are one GEMM in Megatron-Core with Transformer Engine and cast it once: q, k and v
    (one ``linear_qkv``, a TE LayerNormLinear, :func:`fused_qkv`), a gated FFN's gate and up (one fc1 of width
    2 x ffn, :func:`gemm_matrices`; the grouped experts' fc1 likewise); their output gradients form one tensor,
    whose width is the sum of their N. A stack that runs them as separate Linears (``separate``) casts the input
    of each X. In ``training``, matrices the training stack keeps in BF16 (``Matrix.fp8`` False) cast nothing;
    serving stacks quantise their own way (vLLM runs DeepSeek-V4's o_a as an FP8 einsum), so they count all."""
    fwd = bwd = 0.0
    for m in gemm_matrices(lk, separate):
        if m.group == "router" or (training and not m.fp8):
            continue
        bwd += m.n * m.active
        fwd += m.k * m.active
    return fwd, bwd


def fused_grouped_mlp_cast_elems_per_token(lk: LayerKind, separate: tuple[str, ...] = ()) -> tuple[float, float]:
    """(forward, backward) elements per token of the FP8 casts that Transformer Engine's fused grouped MLP runs
    inside its GEMMs' epilogues instead of as kernels of their own (run setting ``moe_fused_grouped_mlp``): the
    routed experts' fc2 input (sum of K of the down projections) forward and fc1's output gradient (sum of N of the
    fc1 / gate and up GEMMs) backward, each x ``active``; 0 for a dense layer.

    TransformerEngine d0067d0 pytorch/ops/fused/grouped_mlp.py (``NVTE_CUTEDSL_FUSED_GROUPED_MLP=1``, cuDNN
    Frontend's CuTe DSL grouped GEMMs on sm100): the forward runs fc1 as ``grouped_gemm_glu_wrapper_sm100`` with
    ``act_func`` swiglu, ``c_dtype`` bfloat16 (fc1's output, saved for the backward) and ``d_dtype``
    float8_e4m3fn (``fc1_d_dtype``: the activated fc2 input, written quantised with its MXFP8 scales), and fc2
    reads that ``d_tensor``; the backward runs fc2's dgrad as ``grouped_gemm_dglu_wrapper_sm100`` (``act_func``
    dswiglu, ``d_dtype`` float8_e4m3fn: fc1's output gradient written quantised). fc1's input and fc2's output
    gradient are still quantised by their own grouped kernels (``_group_quantize_for_grouped_mlp``,
    ``tex.bgrad_group_quantize``), so they stay in :func:`fp8_cast_elems_per_token`'s count. DeepSeek-V4-Flash
    (expert ffn 2,048, top-6, gated): forward 6 x 2,048 = 12,288, backward 6 x 4,096 = 24,576. What the epilogues
    move instead: :func:`fused_grouped_mlp_epilogue_bytes_per_token`."""
    fwd = bwd = 0.0
    if lk.moe is None:
        return fwd, bwd
    for m in gemm_matrices(lk, separate):
        if m.group != "expert":
            continue
        if m.name.endswith(".down"):
            fwd += m.k * m.active
        else:
            bwd += m.n * m.active
    return fwd, bwd


def fused_grouped_mlp_epilogue_bytes_per_token(lk: LayerKind, fp8_cast_bytes: float,
                                               separate: tuple[str, ...] = ()) -> float:
    """HBM bytes per token (forward and backward together) that Transformer Engine's fused grouped MLP moves in its
    GEMMs' epilogues beyond a plain GEMM's BF16 output, with F_f / F_b the elements of
    :func:`fused_grouped_mlp_cast_elems_per_token` and c = ``fp8_cast_bytes`` (:func:`fp8_cast_bytes_per_elem`,
    a stand-alone cast: read 2, write the quantised copies with their scales):

        bytes = F_f (c - 2) + F_b (c - 2) + 2 F_b - 2 F_f = F_f (c - 4) + F_b c

    fc1's epilogue writes fc2's input quantised (a cast's writes, c - 2 per element, beside the BF16 fc1 output
    the GEMM writes anyway and the backward reads); fc2's dgrad epilogue reads that saved fc1 output (2 bytes per
    fc1 output element) and writes fc1's output gradient quantised (c - 2 per element) instead of the BF16
    gradient of fc2's input a plain dgrad writes (2 per fc2 input element). The epilogues sit in compute-bound
    GEMMs, but their bytes are charged as memory-bound traffic all the same (nothing hides them there either).
    MXFP8 (c = 4.0625), per routed copy and expert-ffn element f: 0.0625 + 2 x 4.0625 = 8.1875 bytes, against
    the 30.19 the unfused kernels move (SwiGLU 6 forward and 12 backward, the casts 4.0625 + 2 x 4.0625)."""
    f_f, f_b = fused_grouped_mlp_cast_elems_per_token(lk, separate)
    return f_f * (fp8_cast_bytes - 4.0) + f_b * fp8_cast_bytes


def routed_act_bytes_per_token(lk: LayerKind, act_bytes_per_f: float, fused_grouped_mlp: bool = False) -> float:
    """HBM bytes per token of the routed experts' activation kernel in the forward pass:

        bytes = act_bytes_per_f x expert_ffn x active experts

    (``act_bytes_per_f``: :func:`act_fn_bytes_per_f`, per element of each routed copy's fc2 input), 0 for a dense
    layer, and 0 under Transformer Engine's fused grouped MLP (run setting ``moe_fused_grouped_mlp``), whose fc1
    epilogue applies the activation (TransformerEngine d0067d0 pytorch/ops/fused/grouped_mlp.py; what the epilogues
    move instead: :func:`fused_grouped_mlp_epilogue_bytes_per_token`). The element-wise forward
    (:func:`elementwise_bytes_per_token`) and the ``moe_act`` / ``moe`` recompute (perf/recompute.py) both charge
    it from here."""
    if lk.moe is None or fused_grouped_mlp:
        return 0.0
    return act_bytes_per_f * lk.moe.expert_ffn * lk.moe.active_experts


def sp_gathered_fp8_elems_per_token(lk: LayerKind, hidden: int, separate: tuple[str, ...] = ()) -> float:
    """Elements per token of a layer's FP8 GEMM operands that sequence parallelism all-gathers before a GEMM
    whose backward needs them columnwise: each distinct input of a column-parallel GEMM that reads the hidden
    state (K = hidden: the fused qkv, fc1) and the output gradient of each row-parallel GEMM that writes it
    (N = hidden: the attention output projection, fc2), over the stack's GEMMs (:func:`gemm_matrices`), routed
    experts and router excluded (the experts' tokens come through the MoE dispatcher, not a sequence-parallel
    gather). Llama (one qkv, one fc1, o, down): 4 x hidden. :func:`sp_gathered_fp8_transpose_bytes` prices
    their transposes."""
    e = 0.0
    for m in gemm_matrices(lk, separate):
        if m.group in ("expert", "router") or not m.fp8:
            continue
        if m.split == "col" and m.k == hidden:
            e += m.k
        elif m.split == "row" and m.n == hidden:
            e += m.n
    return e


def sp_gathered_fp8_transpose_bytes(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """HBM bytes per layer and micro-batch on one chip (forward and backward together) that Transformer Engine's
    per-tensor FP8 on Hopper moves beyond the sequence-split casts of :func:`elementwise_bytes_per_token`, for the
    operands a sequence-parallel tp group all-gathers (:func:`sp_gathered_fp8_elems_per_token`, E per token):

        bytes = tokens x E x (2 - 1 / tp)      (tp > 1; 0 otherwise, or without per-tensor FP8 on Hopper)

    Per-tensor FP8 tensors all-gather their rowwise data only (Float8Quantizer / Float8CurrentScalingQuantizer
    ``supports_only_rowwise_all_gather`` True, transformer_engine/pytorch/tensor/float8_tensor.py at TE v2.9), so
    the local shard is cast without its transposed copy (module/linear.py forward at v2.9: ``input_quantizer.
    set_usage(columnwise=False)`` under the all-gather; layernorm_linear.py likewise; base.py
    ``grad_output_preprocess`` quantises a row-parallel layer's output gradient rowwise for the userbuffers
    all-gather) and the weight-gradient GEMM then asks the gathered tensor for its columnwise usage
    (``inputmat_total.update_usage(columnwise_usage=True)`` / ``ln_out_total.update_usage(...)`` /
    ``grad_output.update_usage(columnwise_usage=True)``), which on Hopper, whose FP8 GEMMs take only the TN layout,
    runs an FP8 transpose of the whole gathered tensor (storage/float8_tensor_storage.py ``update_usage`` ->
    ``_create_transpose`` unless ``is_non_tn_fp8_gemm_supported``): read 1 + write 1 byte per element of the
    tokens x E gathered on each rank, against the 1 byte per element of the tokens / tp shard the cast charge
    counts for the transposed copy. Sequence parallelism splits every other memory-bound kernel over tp; this
    transpose grows with tp instead (Llama 3.1 405B at tp 8, 4,096 tokens a rank: 4 x 16,384 x 4,096 x 1.875 =
    503 MB a layer and micro-batch). Stacks that keep the gathered input whole (DTensor TP,
    ``tp_gathered_gemm_inputs``) or run TP without sequence parallelism (``tp_allreduce``) are not on this path."""
    if not (ctx.fp8_gemm and ctx.fp8_transposed_copy and ctx.fp8_recipe in ("delayed", "current")) \
            or ctx.tp_gathered_gemm_inputs or ctx.tp_allreduce:
        return 0.0 * np.asarray(tokens, dtype=np.float64)
    tp = np.asarray(p.tp, dtype=np.float64)
    e = sp_gathered_fp8_elems_per_token(lk, ctx.arch.hidden, ctx.separate_gemms)
    return np.where(tp > 1, tokens * e * (2.0 - 1.0 / tp), 0.0)


def training_fp8_cast_bytes(ctx: StepContext) -> float:
    """Bytes per GEMM-input element a training step's FP8 casts move (:func:`fp8_cast_bytes_per_elem` with the
    run's recipe; a columnwise copy of per-tensor FP8 tensors on Hopper, ``StepContext.fp8_transposed_copy``);
    0 without FP8 GEMMs."""
    if not ctx.fp8_gemm:
        return 0.0
    return fp8_cast_bytes_per_elem(ctx.fp8_recipe, ctx.fp8_transposed_copy)


def elementwise_bytes_per_token(lk: LayerKind, hidden: int, fp8_cast_bytes: float, eager: bool = False,
                                backward_casts: bool = True, relu2_unfused: bool = False,
                                moe_permute: bool = True, dispatch_fused: bool = False,
                                separate_gemms: tuple[str, ...] = (), rope_unfused: bool = False,
                                act_unfused: bool = False, fused_grouped_mlp: bool = False,
                                hidden_dropout: float = 0.0) -> Num:
    """HBM bytes one token moves through a layer's memory-bound kernels in the forward pass (BF16 activations).

    Fused kernels (Transformer Engine, Apex, torch.compile; ``eager`` False): 2 norms (read + write h): 8h; the
    residual connections (:func:`residual_bytes_per_token`: 12h, more with hyper-connections, 4h more in training
    at ``hidden_dropout`` p > 0); rotary
    (:func:`rope_bytes_per_token`): 4 bytes per rotated q / k element (``rope_unfused``: plus
    :func:`unfused_rope_extra_bytes_per_token`, Megatron-Core's ``apply_rope_fusion`` false); a weightless
    per-head query norm (read + write, the norm's bytes per element x ``AttentionCore.q_norm_elems``) and a copy
    of the core's output (``AttentionCore.out_copy_bytes``), both DeepSeek-V4's
    (:mod:`trainsim.model.families.deepseek_v4`); activation function (:func:`act_fn_bytes_per_f`;
    ``relu2_unfused``: the stack's squared ReLU as two ops; ``act_unfused``: the gated activation as its two eager
    ops, run setting ``activation_fusion`` false) over the dense / shared intermediate and the active experts';
    MoE: router scores (3 x 4 bytes x experts) and, with ``moe_permute``, the permute + unpermute at the generic
    k rows per token (:func:`moe_permute_bytes_per_token`, 8 k h: serving, and training stacks whose dispatcher's
    permutation is not sourced); a training step whose permutation runs as a fused kernel pair (Transformer
    Engine's, HybridEP's) charges it with its own backward instead (``moe_permute`` False,
    :func:`moe_permute_fwd_bwd`); FP8 casts:
    ``fp8_cast_bytes`` (:func:`fp8_cast_bytes_per_elem`, by recipe; 0 without FP8 GEMMs) x the elements of
    :func:`fp8_cast_elems_per_token` (over the stack's GEMMs: ``separate_gemms``, :func:`gemm_matrices`). The
    engine charges these kernels once in the forward and twice in the
    backward (perf/step.py: backward memory-bound time = 2 x forward), so with ``backward_casts`` (training) the
    forward figure holds a third of the layer's forward-input and backward-gradient casts together, which the
    three passes sum to exactly; without it (serving, forward only) the forward inputs' casts. The hyper-connections'
    bytes follow the same flag (:func:`residual_bytes_per_token`: a third of their forward and backward kernels'
    bytes in training, the forward's in serving).

    ``dispatch_fused`` (serving decode over DeepEP's low-latency kernels): no permute, no unpermute and no cast of
    the routed experts' first GEMM input run as kernels of their own. deepseek-ai/DeepEP
    csrc/kernels/internode_ll.cu at fbcf430 (2025-06-23): ``dispatch`` reads each token once, casts it to FP8 in
    the kernel (per-128-channel scales) and its receiving half copies every delivered row straight into
    ``packed_recv_x``, laid out ``[local expert, rank x max tokens, hidden]``, the layout DeepGEMM's masked grouped
    GEMM reads; ``combine`` reads a token's k expert outputs and writes their weighted sum. That HBM traffic is
    inside the dispatch / combine kernels, whose time is the all-to-all's (DeepEP's published low-latency rates
    time the whole kernel), so these bytes drop here: the permute + unpermute ``2 x 2 (r + k) h`` and the
    ``fp8_cast_bytes x h x k`` cast of the routed copies' fc1 input; the serving model charges the kernels' own
    copies instead (:func:`trainsim.inference.step.ll_kernel_bytes_per_token`).

    ``fused_grouped_mlp`` (training with Transformer Engine's fused grouped MLP, run setting
    ``moe_fused_grouped_mlp``): the routed experts' activation and its backward run in the grouped GEMMs'
    epilogues, and so do the casts of :func:`fused_grouped_mlp_cast_elems_per_token`: none of them here; the
    epilogues' own traffic instead (:func:`fused_grouped_mlp_epilogue_bytes_per_token`, a third of it in this
    forward figure, as the casts).

    Eager PyTorch (``eager`` True: one kernel per op, torchtitan without torch.compile), per element, as the ops
    run in pytorch/torchtitan at 9dec370 (Dec 2024): RMSNorm (models/norms.py ``RMSNorm``: ``x.float()`` 2 + 4,
    ``pow(2)`` 4 + 4, ``mean(-1)`` 4, ``x * rsqrt`` 4 + 4, ``type_as`` 4 + 2, ``* weight`` 2 + 2) 36 bytes, against
    the fused 4; rotary (models/llama/model.py ``apply_rotary_emb``: ``float()`` 2 + 4, complex multiply 4 + 4,
    ``type_as`` 4 + 2) 20 bytes per q / k element, against 4; ``repeat_kv`` materialises K and V at the query
    head count when kv heads < heads (``expand`` + ``reshape``: read kv, write heads, 2 bytes each, for K and V):
    4 (heads + kv heads) head_dim; SwiGLU ``F.silu(w1 x) * w3 x``: silu 2 + 2 and the product 4 + 2 = 10 per f,
    against 6 (other activations are one kernel either way); residual adds, MoE routing and FP8 casts as fused.
    """
    norm_bytes, rope_bytes = norm_rope_bytes(eager)
    b: Num = 2.0 * norm_bytes * hidden + residual_bytes_per_token(lk.residual_streams, hidden, backward_casts,
                                                                  hidden_dropout)
    b += rope_bytes_per_token(lk, rope_bytes)
    if rope_unfused and not eager:
        b += unfused_rope_extra_bytes_per_token(lk)
    b += sum(norm_bytes * core.q_norm_elems + core.out_copy_bytes for core in lk.attention)
    for core in lk.attention:
        if eager and core.kv_heads < core.heads:
            b += 4.0 * (core.heads + core.kv_heads) * core.qk_head_dim
    act_per_f = act_fn_bytes_per_f(lk.ffn_act, act_unfused, relu2_unfused)
    b += act_fn_bytes_per_f(lk.ffn_act, eager or act_unfused, relu2_unfused) * lk.ffn_dim
    if lk.moe is not None:
        b += routed_act_bytes_per_token(lk, act_per_f, fused_grouped_mlp)
        b = b + 12.0 * (lk.moe.experts + lk.moe.zero_experts)
        if moe_permute and not dispatch_fused:
            b = b + moe_permute_bytes_per_token(lk, hidden)
    if fp8_cast_bytes:
        fwd_elems, bwd_elems = fp8_cast_elems_per_token(lk, separate_gemms, training=backward_casts)
        if dispatch_fused and lk.moe is not None:
            fwd_elems -= float(lk.moe.active_experts) * hidden
        if fused_grouped_mlp and backward_casts:
            in_epilogue_f, in_epilogue_b = fused_grouped_mlp_cast_elems_per_token(lk, separate_gemms)
            fwd_elems, bwd_elems = fwd_elems - in_epilogue_f, bwd_elems - in_epilogue_b
            b += fused_grouped_mlp_epilogue_bytes_per_token(lk, fp8_cast_bytes, separate_gemms) / 3.0
        b += fp8_cast_bytes * ((fwd_elems + bwd_elems) / 3.0 if backward_casts else fwd_elems)
    return b


def hbm_time(bytes_: Num, ctx: StepContext) -> Num:
    """Seconds to move ``bytes_`` through HBM on one chip: bytes / (HBM bandwidth x ``mem_eff``), the one rate of
    every memory-bound kernel (element-wise ops, the loss, unfused attention scores, expert copies, the optimizer
    step)."""
    return bytes_ / (ctx.chip.hbm_bw * ctx.calib.mem_eff)


def bytes_time(bytes_: Num, ctx: StepContext, p: Plans) -> Num:
    """Memory-bound time of ``bytes_`` per token-of-the-tp-group (sequence parallel splits them over tp)."""
    return hbm_time(bytes_ / p.tp, ctx)


def expert_rows_per_chip(lk: LayerKind, p: Plans, tokens: Num) -> np.ndarray:
    """Routed token copies the local experts of one chip receive per micro-batch: tokens x k x etp / tp (the
    ``m_e`` of :func:`layer_gemm_fwd` summed over its E / ep local experts: each of the tokens / tp tokens of a tp
    rank's shard goes to k experts, and expert tensor parallelism gathers etp shards). Read by the expert-buffer
    copies (:func:`sequential_experts_fwd_bwd`, :func:`alltoall_sort_fwd_bwd`)."""
    if lk.moe is None:
        raise ValueError(f"expert_rows_per_chip: layer kind {lk.name!r} has no experts")
    return np.asarray(tokens * lk.moe.active_experts * p.etp / p.tp, dtype=np.float64)


def moe_permute_bytes_per_token(lk: LayerKind, hidden: int, rows_in: Num | None = None) -> Num:
    """HBM bytes one token's MoE permute + unpermute move in the forward (0 for a dense layer):

        4 (r + k) h = 2 x [BF16 (r + k) h]

    Transformer Engine's fused kernels with a mask map (NVIDIA/TransformerEngine
    transformer_engine/pytorch/triton/permutation.py at 20deb83e: ``_permute_kernel`` loads each input row once and
    stores it to every routed expert's slot, ``_unpermute_kernel`` loads a token's k slots and stores one sum),
    BF16, so the permute reads r rows and writes k, 2 (r + k) h bytes, and the unpermute as much, for k = active
    experts and r = ``rows_in`` the rows per token it permutes: k when None (the generic count: 8 k h), in
    training the dispatcher's (:func:`permute_rows_in`)."""
    if lk.moe is None:
        return 0.0
    k = float(lk.moe.active_experts)
    r = k if rows_in is None else rows_in
    return 2.0 * BF16_BYTES * (r + k) * hidden


def moe_permute_fwd_bwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """HBM time (forward, backward) per micro-batch per chip of one MoE layer's permute + unpermute where the
    stack runs them as fused kernels whose backward is the inverse kernel (the dispatchers of
    :func:`permute_rows_in`, which sequence parallelism splits over tp):

        forward B,   backward B,   B = :func:`moe_permute_bytes_per_token` (rows r of :func:`permute_rows_in`)
                                       x tokens / tp

    not the "backward = 2 x forward" of the other memory-bound kernels (perf/step.py), because a permutation's
    gradient is the reverse permutation of the same rows. Transformer Engine d0067d0d
    transformer_engine/pytorch/permutation.py: ``_moe_permute_mask_map.backward`` runs
    ``moe_permute_mask_map_backward``, i.e. ``triton_permutation.unpermute_with_mask_map`` over the k permuted
    gradient rows into r rows (the forward unpermute's bytes), and ``_moe_unpermute_mask_map.backward`` without
    merging probs runs ``moe_unpermute_mask_map_backward_no_probs``, i.e. ``permute_with_mask_map`` of the r
    gradient rows into k slots (the forward permute's bytes); the same in ``moe_sort_chunks_by_index``
    (:func:`alltoall_sort_fwd_bwd`). Megatron-Core passes no merging probs to the unpermute from core_r0.12.0 on:
    the probs travel with the permuted tokens (``permute(..., probs=probs)``) and the experts apply them
    (megatron/core/transformer/moe/token_dispatcher.py at core_r0.12.0 and 0d8e0714: ``combine_postprocess``
    calls ``unpermute(hidden_states, ..., routing_map=...)``; core_r0.11.0 passed ``probs=self.probs``, whose
    backward also reads the k forward rows, 2 k h more, a stack no validation run uses). HybridEP's
    ``dispatch_with_permute`` / ``combine_with_unpermute`` are likewise each other's backward (Megatron-LM 0d8e0714
    megatron/core/transformer/moe/fused_a2a.py ``HybridEPDispatch.backward`` calls ``combine_with_unpermute``,
    ``HybridEPCombine.backward`` ``dispatch_with_permute``). Megatron-Bridge turns the fusion on for its MoE models
    (src/megatron/bridge/models/deepseek/deepseek_v3_bridge.py ``provider.moe_permute_fusion = True`` at 067f987d,
    and the other MoE bridges); NeMo AutoModel's copy of the flex dispatcher sets it (:func:`permute_rows_in`).

    Full recompute reruns the forward B (it is in the forward compute, perf/step.py); selective ``moe`` recompute
    too (perf/recompute.py). 0 for a dense layer and where :func:`permute_rows_in` gives None: an unpublished
    dispatcher's permutation stays in :func:`elementwise_fwd` under the generic backward rule, the all-gather
    dispatcher's unfused index ops are :func:`allgather_permute_fwd_bwd`.

    Example (test): Qwen3-30B-A3B (hidden 2048, top-8) under the all-to-all dispatcher, 4,096 tokens, tp 1:
    B = 4 x (1 + 8) x 2048 x 4096 = 301,989,888 bytes forward and as many backward (the generic rule charged
    B + 2 B)."""
    zero = 0.0 * np.asarray(tokens, dtype=np.float64)
    rows_in = permute_rows_in(lk, ctx, p)
    if rows_in is None:
        return zero, zero
    b = hbm_time(moe_permute_bytes_per_token(lk, ctx.arch.hidden, rows_in) * tokens / p.tp, ctx) + zero
    return b, b


def permute_rows_in(lk: LayerKind, ctx: StepContext, p: Plans) -> Num | None:
    """Rows per token the MoE permute of a training step reads (``rows_in`` of
    :func:`moe_permute_bytes_per_token`, priced by :func:`moe_permute_fwd_bwd`), by dispatcher; None (the generic
    k, priced in :func:`elementwise_fwd`) for a dense layer and where the dispatcher's permutation is not sourced.

    * ``alltoall``, Megatron-Core ``MoEAlltoAllTokenDispatcher``: ``dispatch_preprocess`` permutes the layer's own
      tokens before the all-to-all (``permute(hidden_states, routing_map, ...)``; Transformer Engine's fused
      permute loads each input row once and stores it to every routed expert's slot) and ``combine_postprocess``
      unpermutes after it (k slots in, one row out): 1 row (megatron/core/transformer/moe/token_dispatcher.py at
      Megatron-LM 0d8e0714, the Megatron-Core of Megatron-Bridge v0.2.0). Its second pair of copies, the sort of
      the received chunks by local expert, is :func:`alltoall_sort_fwd_bwd`. Not under a stack that routes
      node-limited (DeepSeek's HAI-LLM, whose dispatcher is not published): the generic k.
    * ``deepep``: the rows the dispatch delivered, one per destination rank
      (:func:`trainsim.perf.comm_ep.dispatched_rows_per_token`), permuted by Transformer Engine's kernel.
    * ``hybridep``: likewise; HybridEP's ``dispatch_with_permute`` writes one row per (token, destination rank)
      into the rank's receive buffer and then runs its own permute kernel over those rows, each read once and
      stored to every local expert it is routed to (deepseek-ai/DeepEP branch hybrid-ep,
      csrc/hybrid_ep/executor/executor.cu ``Executor::dispatch_postprocess`` with ``enable_permute``, and
      csrc/hybrid_ep/extension/permute.cu ``permute_kernel`` at 13d83799: a loop over ``num_dispatched_tokens``
      rows and their local experts); ``combine_with_unpermute`` reverses it (Megatron-LM 0d8e0714
      megatron/core/transformer/moe/fused_a2a.py ``HybridEPDispatch`` / ``HybridEPCombine``).
    * ``allgather``: None; its chain of unfused index ops over the gathered tokens is
      :func:`allgather_permute_fwd_bwd`, not the generic count."""
    if lk.moe is None:
        return None
    if ctx.moe_dispatcher in ("deepep", "hybridep"):
        return dispatched_rows_per_token(lk, ctx, p)
    if ctx.moe_dispatcher == "alltoall" and not ctx.moe_node_limited_routing:
        return 1.0
    return None


def alltoall_sort_fwd_bwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """HBM time (forward, backward) per micro-batch per chip of the all-to-all dispatcher's sort of the received
    token chunks by local expert and its inverse; 0 for a dense layer, one local expert, another dispatcher or a
    stack that routes node-limited (:func:`permute_rows_in`).

    Megatron-Core ``MoEAlltoAllTokenDispatcher`` receives its tokens grouped by source rank and, where a rank holds
    more than one expert (``num_local_experts > 1``), reorders them by local expert before the grouped GEMM
    (``dispatch_postprocess``: "Permutation 2: Sort tokens by local expert", ``sort_chunks_by_idxs``) and back
    before the combine all-to-all (``combine_preprocess``: "Unpermutation 2"), both through Transformer Engine's
    fused ``moe_sort_chunks_by_index`` under ``moe_permute_fusion`` (megatron/core/transformer/moe/token_dispatcher.py
    and moe_utils.py at Megatron-LM 0d8e0714); the dispatchers that permute once after their own transfer
    (DeepEP, HybridEP) have no such pass. Each pass reads and writes every received row: B = rows x hidden x 2
    bytes (BF16), rows = tokens x k x etp / tp routed copies per chip (as :func:`sequential_experts_fwd_bwd`), so

        forward 4 B (sort + unsort),   backward 4 B (the gradients unsorted and sorted back: the autograd
        functions of the two passes are each other's inverse, moving the same rows).

    Each time is bytes / (HBM bandwidth x ``mem_eff``), as every memory-bound kernel of :func:`elementwise_fwd`."""
    zero = 0.0 * np.asarray(tokens, dtype=np.float64)
    if (lk.moe is None or ctx.moe_dispatcher != "alltoall" or ctx.moe_node_limited_routing):
        return zero, zero
    e_local = lk.moe.experts / np.asarray(p.ep, dtype=np.float64)
    rows = expert_rows_per_chip(lk, p, tokens)
    b = np.where(e_local > 1.0, 4.0 * rows * ctx.arch.hidden * BF16_BYTES, 0.0)
    return hbm_time(b, ctx), hbm_time(b, ctx)


def elementwise_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Memory-bound kernels of one layer; sequence parallelism splits them over tp. The MoE permute is here only
    where its dispatcher's permutation is not sourced (the generic k rows, :func:`permute_rows_in` None); the
    fused one is :func:`moe_permute_fwd_bwd`, the all-gather dispatcher's chain of index ops
    :func:`allgather_permute_fwd_bwd`; Hopper's per-tensor FP8 transposes the tensors
    sequence parallelism gathers (:func:`sp_gathered_fp8_transpose_bytes`), which tp does not split."""
    generic = permute_rows_in(lk, ctx, p) is None and ctx.moe_dispatcher != "allgather"
    by = elementwise_bytes_per_token(lk, ctx.arch.hidden, training_fp8_cast_bytes(ctx),
                                     eager=ctx.elementwise_kernels == "eager",
                                     relu2_unfused=ctx.relu2_unfused, moe_permute=generic,
                                     separate_gemms=ctx.separate_gemms,
                                     rope_unfused=not ctx.rope_fusion,
                                     act_unfused=not ctx.activation_fusion,
                                     fused_grouped_mlp=ctx.moe_fused_grouped_mlp,
                                     hidden_dropout=ctx.hidden_dropout) * tokens / p.tp
    rep = replicated_rope_bytes_per_token(lk, norm_rope_bytes(ctx.elementwise_kernels == "eager")[1])
    by = by + rep * tokens * (1.0 - 1.0 / p.tp)
    # the backward's FP8 transposes of sequence-parallel gathered operands, a third in this forward figure (the
    # engine charges these kernels forward + 2 x forward backward, as the casts)
    by = by + sp_gathered_fp8_transpose_bytes(lk, ctx, p, tokens) / 3.0
    return hbm_time(by, ctx)


def kernel_floor_time(kernels: Num, per_kernel_s: Num) -> Num:
    """Fixed device time of ``kernels`` kernels beyond their traffic and FLOPs (launch ramp, tail, the dependency
    gap to the next kernel), the one per-kernel cost of the engine:

        t = kernels x per_kernel_s

    ``per_kernel_s`` is ``gemm_latency_s`` (4 us; perf/data/constants.yaml, which the serving model reads too,
    inference/calib.py ``default_calib``), read by
    :func:`gemm_time` (one per GEMM), :func:`eager_kernels_fwd_bwd` (training's eager glue kernels) and the serving
    step's non-GEMM kernels and routed-expert GEMM launches (:func:`trainsim.inference.step.non_gemm_kernels`).
    NVIDIA's cuDNN RMSNorm forward sweep on a GB300 and a GB200 (NVIDIA/cudnn-frontend
    benchmark/norms/results/gb300/all_models_20260226_190305.csv and gb200/all_models_20260226_180237.csv at
    3929da2e: CUPTI kernel time, L2 flushed, 15 shapes of 4.2 to 268 MB) fits time = 3.7 / 3.8 us + bytes /
    6.8 TB/s (least squares); Megatron-LM PR #5984 measured the eager compressor region of DeepSeek-V4's THD path
    in a CUDA graph on a B200 at 244.9 us for the ~90 kernels issue #5968 counts (2.7 us each, bytes included). A
    CUDA graph drops the host's launches, not this device-side cost."""
    return kernels * per_kernel_s


def eager_kernels_fwd_bwd(lk: LayerKind, ctx: StepContext) -> tuple[Num, Num]:
    """(forward, backward) fixed time per micro-batch of the small kernels a layer's eager PyTorch regions issue
    (``LayerKind.eager_kernels_fwd`` / ``eager_kernels_bwd``, counted per direction by the model builder from the
    framework's code: DeepSeek-V4's compressors, lightning-indexer loss, sparse index lists and hyper-connection
    casts, :func:`trainsim.model.families.deepseek_v4.eager_kernels`), on top of their bytes, each direction at
    :func:`kernel_floor_time`. The backward carries its own count, not the "backward = 2 x forward" of
    :func:`elementwise_fwd`: autograd's backward of the compressors' slice copies issues more than twice their
    forward kernels, the indexer loss's backward (computed in its forward) far fewer. Sequence and tensor
    parallelism do not split a kernel count. The step (perf/step.py) books them with the expert copies, the other
    kernels with their own backward count; a full recompute reruns the forward's."""
    c = ctx.calib.gemm_latency_s
    return kernel_floor_time(lk.eager_kernels_fwd, c), kernel_floor_time(lk.eager_kernels_bwd, c)


def replicated_rope_bytes_per_token(lk: LayerKind, bytes_per_elem: float = ROPE_BYTES) -> float:
    """The part of :func:`rope_bytes_per_token` that belongs to the layer's tp-replicated cores
    (``AttentionCore.tp_replicated``: the DSA indexer rotates its H_I query heads and its key on every tp rank, over
    the gathered sequence, :func:`trainsim.model.blocks.dsa_indexer`), which sequence parallelism does not split:
    :func:`elementwise_fwd` charges it whole on each rank (``rep x tokens x (1 - 1 / tp)`` on top of the split
    share). The indexer's only element-wise bytes of its own; 0 without such a core."""
    rep = tuple(c for c in lk.attention if c.tp_replicated)
    return rope_bytes_per_token(replace(lk, attention=rep), bytes_per_elem) if rep else 0.0


#: HBM bytes the all-gather MoE dispatcher's permutation chain moves per chip in one layer and micro-batch, as
#: coefficients of R h and T_g h (R routed rows the chip's local experts receive, :func:`expert_rows_per_chip`;
#: T_g tokens the chip gathers; h hidden; BF16 activations): (forward R h, forward T_g h, backward R h, backward
#: T_g h), keyed by the stack's ``moe_allgather_index_put`` flag. Every op reads and writes its whole operand
#: (a zero fill writes it; an accumulating scatter reads the source rows and reads and writes the target rows it
#: updates); the all-gather and the reduce-scatter are communication (perf/comm_ep.py), the experts'
#: buffers :func:`sequential_experts_fwd_bwd`, the router's (T_g x k) indices and probabilities are ignored.
#:
#: * False, Megatron-LM core_r0.6.0 megatron/core/transformer/moe/token_dispatcher.py
#:   ``MoEAllGatherTokenDispatcher``: forward ``torch.gather`` of the local rows from the gathered tokens (4 R h)
#:   and again into expert order (4 R h); unpermute ``zeros_like`` (2 R h) + out-of-place ``scatter`` (clone 4 R h
#:   + scatter 4 R h), the scale by the router probabilities (4 R h), ``torch.zeros`` of the gathered shape (2 T_g
#:   h) + out-of-place ``scatter_add`` (clone 4 T_g h; source 2 R h + target rows 4 R h): 28 R h + 6 T_g h.
#:   Backward (PyTorch autograd): ``scatter_add`` -> ``gather`` of the gradient rows (4 R h); the scale -> the
#:   scaled gradient (4 R h) and the probabilities' gradient, a product summed over h (6 R h + 2 R h); ``scatter``
#:   -> ``gather`` (4 R h); each ``gather`` -> ``zeros`` + ``scatter_add_`` (2 R h + 6 R h, and 2 T_g h + 6 R h for
#:   the gathered one): 34 R h + 2 T_g h.
#: * True, MindSpeed's patch (Ascend/MindSpeed mindspeed/core/transformer/moe/token_dispatcher.py
#:   ``allgather_token_permutation`` / ``allgather_token_unpermutation`` at e6ea2117, the commit MindSpeed-LLM
#:   c25982e4's examples/README.md pins; NewIndePut from d7bac29b, 2024-08-05): forward index
#:   ``global_hidden_states[global_local_map, :]`` (4 R h) and ``local_hidden_states[indices, :]`` (4 R h);
#:   unpermute ``zeros_like`` (2 R h) + in-place ``index_put_`` (4 R h), the scale (4 R h), an FP32
#:   ``torch.zeros`` of the gathered shape (4 T_g h), ``NewIndePut``: the rows cast to FP32 (2 + 4 R h), an FP32
#:   accumulating ``index_put_`` (source 4 R h + target rows 8 R h) and the cast of the result back to BF16 (4 + 2
#:   T_g h): 36 R h + 10 T_g h. Backward: the cast -> BF16 to FP32 (6 T_g h); ``NewIndePut.backward`` ->
#:   ``index_select`` of FP32 rows (8 R h) and their cast back to BF16 (6 R h); the scale (12 R h, as above);
#:   ``index_put_`` -> the indexed gradient (4 R h); each index -> ``zeros`` + accumulating BF16 ``index_put_``
#:   (PyTorch ``index_backward``: ``_index_put_impl_(zeros, indices, grad, accumulate=True)``), which torch_npu
#:   runs as ``aclnnIndexPutImpl``. On the 910B an accumulating FP16 / BF16 put that does not take the sorted
#:   kernel casts the whole target and the values to FP32, accumulates in FP32 (IndexPutV2) and casts the result
#:   back, which ``ViewCopy`` then copies into the target (hicann/ops-nn index/index_put_v2/op_api/
#:   aclnn_index_put_impl.cpp at ed71b624, aclnnIndexPutImplGetWorkspaceSize: 'Begin IndexPutV2 cast fp16 or bf16
#:   to fp32', then Cast to the target's dtype and ViewCopy). The sorted kernel that avoids the casts
#:   (IndexPutWithSort, chosen for BF16 where 'self和values升精度前后总内存超过250M', the upcast self and values over
#:   250 MB: index/index_put_with_sort/op_host/op_api/index_put_with_sort.cpp at d2c56906) is not what this stack
#:   ran: MindSpeed d7bac29b (2024-08-05, '重写indexput，减少cast算子', rewrite index_put to cut Cast operators)
#:   replaced the forward's BF16 accumulating put of the same layer by an explicit FP32 one for that reason. Per
#:   target of n rows and R value rows: zeros 2 n h, the target's cast 6 n h, the values' cast 6 R h, the FP32
#:   accumulate (source 4 R h + target rows 8 R h), the cast back 6 n h and the copy 4 n h, i.e. 18 n h + 18 R h:
#:   n = R for the sort's index, n = T_g for the selection's: 54 R h + 18 T_g h, and in all 84 R h + 24 T_g h.
#:   (The full-range slices ``hidden_states[:n, :]`` are the tensors themselves: PyTorch's indexing skips a slice
#:   over the whole dim.)
ALLGATHER_PERMUTE_BYTES_PER_RH_TH: dict[bool, tuple[float, float, float, float]] = {
    False: (28.0, 6.0, 34.0, 2.0),
    True: (36.0, 10.0, 84.0, 24.0),
}


def allgather_permute_fwd_bwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """HBM time (forward, backward) per micro-batch per chip of one MoE layer's permutation under the all-gather
    dispatcher (``moe_dispatcher: allgather``); 0 for a dense layer and other dispatchers.

    The dispatcher all-gathers the sequence-parallel tokens of the tensor x expert parallel group (the expert
    tensor-parallel group here; Megatron-LM core_r0.6.0 ties it to tp), so every chip holds T_g = tokens x ep x
    etp / tp tokens in full hidden width and selects, sorts, scales and scatters back the R = tokens x k x etp / tp
    rows its local experts receive (:func:`expert_rows_per_chip`) with a chain of unfused index ops, each of them
    a whole pass over its rows:

        forward  (a R + b T_g) h bytes,   backward (c R + d T_g) h bytes,

    (a, b, c, d) by stack (:data:`ALLGATHER_PERMUTE_BYTES_PER_RH_TH`, derivations there), each time bytes / (HBM
    bandwidth x ``mem_eff``) as every memory-bound kernel of :func:`elementwise_fwd`, which does not charge this
    layer the generic permute (the backward counts above replace its "backward = 2 x forward" rule).

    Example (test): Mixtral 8x7B under MindSpeed-LLM 2024 at tp = etp = 8, ep 1, 16384 tokens: T_g = 16384,
    R = 32768, h = 4096: forward (36 x 32768 + 10 x 16384) x 4096 = 5.50 GB, backward (84 x 32768 + 24 x 16384) x
    4096 = 12.88 GB (6.44 GB of it the two BF16 accumulating puts' FP32 casts and copy-back), 18.4 GB a layer and
    micro-batch against the 3.2 GB of the generic count (8 k h per gathered token forward, twice that backward)."""
    zero = 0.0 * np.asarray(tokens, dtype=np.float64)
    if lk.moe is None or ctx.moe_dispatcher != "allgather":
        return zero, zero
    a, b, c, d = ALLGATHER_PERMUTE_BYTES_PER_RH_TH[bool(ctx.moe_allgather_index_put)]
    h = float(ctx.arch.hidden)
    rows = expert_rows_per_chip(lk, p, tokens)
    gathered = np.asarray(tokens * p.ep * p.etp / p.tp, dtype=np.float64)
    return hbm_time((a * rows + b * gathered) * h, ctx) + zero, hbm_time((c * rows + d * gathered) * h, ctx) + zero


def sequential_experts_fwd_bwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """HBM time (forward, backward) per micro-batch per chip that one MoE layer's experts cost when they run one
    after another (Megatron-Core ``SequentialMLP``, the layer without ``--moe-grouped-gemm``; run spec
    ``training.moe_grouped_gemm: false``) beyond a grouped GEMM over the same tokens. 0 for a dense layer or
    grouped experts.

    Every chip's E_l = E / ep local experts receive rows = tokens x k x etp / tp permuted token copies (the
    ``m_e`` of :func:`layer_gemm_fwd` summed over its local experts), a BF16 buffer of B = rows x hidden x 2 bytes
    (the expert input; the expert output, full hidden before the row-parallel reduction, is as large).

    * Slicing SequentialMLP (the stack's ``sequential_mlp_slices`` flag: Megatron-Core core_r0.6.0-core_r0.8.0
      megatron/core/transformer/moe/experts.py): ``output_local = torch.zeros_like(permuted_local_hidden_states)``,
      each expert reads the view ``permuted_local_hidden_states[start:end]`` and writes
      ``output_local[start:end] = output``. Forward: the zero fill and the slice copies, 3 B. Backward, by
      PyTorch's autograd: each in-place slice copy is a ``CopySlices`` node that first copies the whole incoming
      gradient (torch/csrc/autograd/functions/tensor.cpp ``CopySlices::apply``: ``result.copy_(grad)``; then
      clones its slice and writes the slice back from zeros, 5 B / E_l), 2 B + 5 B / E_l each; each input slice's
      ``slice_backward`` (aten/src/ATen/native/TensorShape.cpp) allocates a whole zero gradient and copies its slice
      in, B + 2 B / E_l each; the E_l whole gradients of the permuted buffer are summed by the autograd engine's
      input buffer, E_l - 1 additions reading two buffers and writing one, 3 B each. In all

          forward 3 B,   backward E_l (2 B + 5 B / E_l) + E_l (B + 2 B / E_l) + 3 (E_l - 1) B = (6 E_l + 4) B.

    * Split / concatenate (Megatron-Core core_r0.9.0 and later, ``torch.split`` of the permuted tokens and
      ``torch.cat`` of the outputs): the concatenation copies the outputs (read and write, 2 B) and its backward
      ``torch.split``s the gradient into views; the split's backward concatenates the input gradients (2 B):
      forward 2 B, backward 2 B.

    Each time is bytes / (HBM bandwidth x ``mem_eff``), as every memory-bound kernel of :func:`elementwise_fwd`.
    The per-expert GEMMs themselves are costed by :func:`layer_gemm_fwd` (the same shapes either way)."""
    zero = 0.0 * np.asarray(tokens, dtype=np.float64)
    if lk.moe is None or ctx.moe_grouped_gemm:
        return zero, zero
    e_local = lk.moe.experts / p.ep
    rows = expert_rows_per_chip(lk, p, tokens)
    b = rows * ctx.arch.hidden * BF16_BYTES
    if ctx.sequential_mlp_slices:
        fwd, bwd = 3.0 * b, (6.0 * e_local + 4.0) * b
    else:
        fwd, bwd = 2.0 * b, 2.0 * b
    return hbm_time(fwd, ctx), hbm_time(bwd, ctx)


#: MoE dispatchers that pad each local expert's rows to the FP8 alignment themselves, so that TEGroupedMLP's
#: Fp8Padding finds them aligned and copies nothing: HybridEP (``_HybridEPManager.dispatch`` with ``pad_multiple``,
#: megatron/core/transformer/moe/token_dispatcher.py at d7288711); :func:`fp8_padding_fwd_bwd`
FP8_PADDING_DISPATCHERS = ("hybridep",)


def fp8_padding_fwd_bwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """HBM time (forward, backward) per micro-batch per chip of Megatron-Core's FP8 padding of the grouped experts'
    rows; 0 for a dense layer, a BF16 run, and where the rows arrive aligned or the experts are not grouped GEMMs.

    Megatron-Core's ``TEGroupedMLP`` under FP8 pads every local expert's rows to Transformer Engine's FP8
    alignment before the grouped GEMM (``quantization_padding``, TE ``Fp8Padding``: 32 rows for MXFP8, 16 for the
    other recipes) and unpads the output after it (``quantization_unpadding``, ``Fp8Unpadding``)
    (megatron/core/transformer/moe/experts.py at Megatron-LM 0d8e0714, the Megatron-Core of NeMo 25.11, and
    unchanged at b0cc2706 and d7288711). TE v2.9 transformer_engine/pytorch/module/fp8_padding.py returns the input
    untouched only when every count is already aligned (``if m_splits == padded_m_splits``); otherwise
    ``tex.fused_multi_row_padding`` writes a new padded tensor, and its backward unpads the gradient
    (``fused_multi_row_unpadding``); ``Fp8Unpadding`` is the mirror image (fp8_unpadding.py). Dropless routing
    leaves counts that are not multiples of 16 / 32 (Megatron-Core ``expert_rows_var``: binomial), so the copies
    run every layer, whatever the dispatcher (TEGroupedMLP.__init__ builds them under any FP8 config and forward
    calls them unconditionally, experts.py lines 837-840, 880-887 and 978 at 0d8e0714: the all-gather,
    all-to-all and DeepEP dispatchers alike), except where the rows arrive aligned: the dispatcher pads each
    expert's rows itself (:data:`FP8_PADDING_DISPATCHERS`: HybridEP under FP8, ``_HybridEPManager.dispatch``
    passes ``pad_multiple = get_align_size_for_quantization``, token_dispatcher.py at d7288711;
    ``get_fp8_align_size`` at 0d8e0714), the run pads the routing map (run setting
    ``moe_router_padding_for_quantization``: ``MoEAlltoAllTokenDispatcher.dispatch_preprocess`` and
    ``_DeepepManager`` pad it to the alignment, token_dispatcher.py lines 625-630 and 1306-1309 at 0d8e0714;
    Megatron-Core's default False, transformer_config.py line 510: padding the routing map "can remove the
    explicit padding in the GroupedMLP layer"; refused with the all-gather dispatcher, lines 1445-1449), which the
    Megatron-Bridge DeepSeek-V3 recipes leave off (not set at v0.1.0rc4 / v0.2.2; ``moe_router_padding_for_fp8 =
    False`` in src/megatron/bridge/recipes/deepseek/deepseek_v3.py at v0.4.2), drop-and-pad to capacity (run
    setting ``moe_token_drop``), and the fused grouped MLP (``moe_fused_grouped_mlp``, its own kernels).
    Megatron-Core 0.14 (NeMo 25.09) has the same copies (``fp8_padding`` / ``fp8_unpadding``, experts.py at
    core_v0.14.0).

    Each pass reads and writes every routed row, B = rows x hidden x 2 bytes (BF16; rows = tokens x k x etp / tp,
    :func:`expert_rows_per_chip`; the at most align - 1 pad rows per expert and the per-row FP32 probability padded
    alongside, 4 bytes against 2 x hidden, are left out):

        forward 4 B (pad the input, unpad the output),   backward 4 B (the output gradient padded, the input
        gradient unpadded).

    Each time is bytes / (HBM bandwidth x ``mem_eff``), as every memory-bound kernel of :func:`elementwise_fwd`.
    Not under a stack that routes node-limited (:func:`permute_rows_in`: its dispatcher is not published)."""
    zero = 0.0 * np.asarray(tokens, dtype=np.float64)
    if (lk.moe is None or not ctx.fp8_gemm or not ctx.moe_grouped_gemm or ctx.moe_fused_grouped_mlp
            or ctx.moe_token_drop or ctx.moe_node_limited_routing or ctx.moe_router_padding_for_quantization
            or ctx.moe_dispatcher in FP8_PADDING_DISPATCHERS):
        return zero, zero
    b = 4.0 * expert_rows_per_chip(lk, p, tokens) * ctx.arch.hidden * BF16_BYTES
    return hbm_time(b, ctx), hbm_time(b, ctx)


def expert_copies_fwd_bwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """HBM time (forward, backward) per micro-batch per chip of one MoE layer's token copies that carry their own
    backward count rather than the "backward = 2 x forward" of :func:`elementwise_fwd`: the fused permute +
    unpermute (:func:`moe_permute_fwd_bwd`), the all-to-all dispatcher's sort by local expert
    (:func:`alltoall_sort_fwd_bwd`), the experts run one after another (:func:`sequential_experts_fwd_bwd`),
    the all-gather dispatcher's index ops (:func:`allgather_permute_fwd_bwd`) and the FP8 padding of the experts'
    rows (:func:`fp8_padding_fwd_bwd`). The one sum the step (decoder and
    MTP layers, perf/step.py) and selective ``moe`` recompute (perf/recompute.py, the forward part) read; 0 for a
    dense layer."""
    f1, b1 = moe_permute_fwd_bwd(lk, ctx, p, tokens)
    f2, b2 = alltoall_sort_fwd_bwd(lk, ctx, p, tokens)
    f3, b3 = sequential_experts_fwd_bwd(lk, ctx, p, tokens)
    f4, b4 = allgather_permute_fwd_bwd(lk, ctx, p, tokens)
    f5, b5 = fp8_padding_fwd_bwd(lk, ctx, p, tokens)
    return f1 + f2 + f3 + f4 + f5, b1 + b2 + b3 + b4 + b5


def layer_matmul_flops_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Model FLOPs of one layer's GEMMs on one chip per micro-batch (forward): 2 x active params x tokens / (tp cp)."""
    return 2.0 * lk.active_matmul_params * tokens / p.tp
