"""Exact rank order of each partition's experiences: an order-statistic index, compiled by numba.

H-PR (and PR) draw "the experience of rank ``r``" (by ``|delta|``, descending) and move an
experience whenever its priority changes, so both must be exact and cheap at every call. Each
partition keeps its experiences in rank order as a *blocked sorted list*: blocks of at most
``BLOCK`` ``(priority, slot)`` keys, each block sorted, the blocks in order, and a Fenwick tree over
the blocks' counts.

- rank ``r`` -> slot: a Fenwick descent over the blocks (``log2`` of ~``4 C / BLOCK`` steps, in
  a few KB that stay in cache) and one read in the block;
- insert / remove a key: a binary search over the blocks' first keys, one inside the block,
  a shift of at most ``BLOCK`` entries and a Fenwick update: ``O(log C + BLOCK)`` with
  ``BLOCK`` small, the reads and writes within one 1 KB block.

A full block splits in two; an emptied one is dropped; when a partition runs out of spare
blocks it is repacked half full (``O(C)``, after at least ``C`` insertions). None of this
changes the order, which is the total order of the keys: priority descending, then slot
ascending (ties in a fixed order). So draws depend only on the keys, not on how the blocks
happen to be laid out, and a memory rebuilt from its priorities samples identically.

Memory: at most ``4 C / BLOCK`` blocks of ``BLOCK`` int64 keys per partition, 32 bytes per slot,
plus a buffer of ``C`` keys for repacking and a few KB per partition of block bookkeeping.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from lightning_distill.upstream import NUMBA_WITHOUT_REFCOUNTS

BLOCK = 128  # keys per block at most: a block is 1 KB, a shift a few cache lines


class RankIndex(NamedTuple):
    """The arrays of the index, per partition ``p`` (numba takes a tuple of arrays as one argument).

    A key is one int64 that sorts as the rank order: ``(0x7FFFFFFF - bits(|delta|)) << 32 | slot``
    (a non-negative float32's bits grow with its value). Blocks are numbered per partition;
    ``order[p, k]`` is the block at position ``k`` (its ``k``-th in rank order), ``head[p, k]``
    that block's first key, and ``fenwick[p]`` sums the counts of positions ``1..NB``.
    """

    keys: np.ndarray  # [P, NB, BLOCK] int64, each block's keys in ascending order
    fill: np.ndarray  # [P, NB] int32, keys in each block
    order: np.ndarray  # [P, NB] int32, block id at each position
    head: np.ndarray  # [P, NB] int64, first key of the block at each position
    fenwick: np.ndarray  # [P, NB + 1] int32, over the counts in position order
    spare: np.ndarray  # [P, NB] int32, a stack of unused block ids
    meta: np.ndarray  # [P, 3] int64: positions in use, spare blocks on the stack, keys held
    scratch: np.ndarray  # [C] int64, one partition's keys while it is repacked


def empty_index(partitions: int, capacity: int) -> RankIndex:
    """An index with room for ``capacity`` keys in each of ``partitions`` partitions."""
    blocks = 4 * capacity // BLOCK + 4  # repacked half full, a partition needs at most half
    index = RankIndex(
        keys=np.zeros((partitions, blocks, BLOCK), dtype=np.int64),
        fill=np.zeros((partitions, blocks), dtype=np.int32),
        order=np.zeros((partitions, blocks), dtype=np.int32),
        head=np.zeros((partitions, blocks), dtype=np.int64),
        fenwick=np.zeros((partitions, blocks + 1), dtype=np.int32),
        spare=np.zeros((partitions, blocks), dtype=np.int32),
        meta=np.zeros((partitions, 3), dtype=np.int64),
        scratch=np.zeros(capacity, dtype=np.int64),
    )
    for p in range(partitions):
        _repack(index, p, np.zeros(0, dtype=np.int64))
    return index


def index_nbytes(index: RankIndex) -> int:
    return sum(array.nbytes for array in index)


# ---- kernels ---------------------------------------------------------------------------------
def _prefetch(typingctx, array, offset):
    """Ask the CPU to bring ``array[offset]``'s cache line in, without waiting for it (LLVM's
    ``llvm.prefetch``, for reading, into every cache level). A batch's moves prefetch the blocks
    they will search first, so that the blocks' memory reads overlap instead of queueing one
    behind another (a partition's blocks are tens of MB: most reads miss every cache)."""
    if not isinstance(array, types.Array) or array.ndim != 1:
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(array)(context, builder, args[0])
        address = cgutils.get_item_pointer(context, builder, array, data, [args[1]], wraparound=False)
        i32 = ir.IntType(32)
        kind = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        function = cgutils.get_or_insert_function(builder.module, kind, "llvm.prefetch.p0")
        builder.call(function, [builder.bitcast(address, cgutils.voidptr_t), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, offset), codegen


prefetch: Any = intrinsic(_prefetch)  # prefetch(array, offset) in a kernel


# positions in ``meta``
_USED, _SPARE, _KEYS = 0, 1, 2
_FINITE = 0x7F800000  # the bits of +inf: a finite non-negative float32's bits are below


@numba.njit(cache=True, inline="always")
def _key(bits, slot):
    return ((0x7FFFFFFF - np.int64(bits)) << 32) | np.int64(slot)


@numba.njit(cache=True)
def _rebuild_fenwick(ix, p) -> None:
    used = ix.meta[p, _USED]
    size = ix.fenwick.shape[1]
    for i in range(size):
        ix.fenwick[p, i] = 0
    for k in range(used):
        ix.fenwick[p, k + 1] = ix.fill[p, ix.order[p, k]]
    for i in range(1, size):
        parent = i + (i & -i)
        if parent < size:
            ix.fenwick[p, parent] += ix.fenwick[p, i]


@numba.njit(cache=True, inline="always")
def _fenwick_add(ix, p, position, delta) -> None:
    i = position + 1
    while i < ix.fenwick.shape[1]:
        ix.fenwick[p, i] += delta
        i += i & -i


@numba.njit(cache=True)
def _repack(ix, p, keys) -> None:
    """Lay out the keys (ascending) in blocks half full, all other blocks spare."""
    blocks = ix.fill.shape[1]
    half = ix.keys.shape[2] // 2
    n = len(keys)
    used = max(1, (n + half - 1) // half)
    for k in range(used):
        lo, hi = k * half, min(n, (k + 1) * half)
        ix.order[p, k] = k
        ix.fill[p, k] = max(0, hi - lo)
        for i in range(lo, hi):
            ix.keys[p, k, i - lo] = keys[i]
        if hi > lo:
            ix.head[p, k] = keys[lo]
    for k in range(used, blocks):
        ix.fill[p, k] = 0
        ix.spare[p, k - used] = blocks - 1 - (k - used)
    ix.meta[p, _USED], ix.meta[p, _SPARE], ix.meta[p, _KEYS] = used, blocks - used, n
    _rebuild_fenwick(ix, p)


@numba.njit(cache=True)
def _gather_keys(ix, p, out) -> int:
    """Write partition ``p``'s keys in rank order to ``out``; returns how many."""
    i = 0
    for k in range(ix.meta[p, _USED]):
        b = ix.order[p, k]
        for j in range(ix.fill[p, b]):
            out[i] = ix.keys[p, b, j]
            i += 1
    return i


@numba.njit(cache=True)
def ranked_keys(ix, p):
    """All keys of partition ``p`` in rank order (a new array)."""
    keys = np.empty(ix.meta[p, _KEYS], np.int64)
    _gather_keys(ix, p, keys)
    return keys


@numba.njit(cache=True, inline="always")
def _position_of(ix, p, key) -> int:
    """The last position whose first key is at most ``key`` (0 if none)."""
    lo, hi = 1, ix.meta[p, _USED]  # answer in [lo - 1, hi - 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if key < ix.head[p, mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


@numba.njit(cache=True, inline="always")
def _offset_in(keys, n, key) -> int:
    """The first offset among ``keys[:n]`` (ascending) whose key is not below ``key``: the keys
    below it, counted. A block is at most ``BLOCK`` keys, and the count is a vectorised pass
    with no branch to mispredict (3x a binary search's speed at 128 keys, measured)."""
    below = 0
    for j in range(n):
        below += keys[j] < key
    return below


@numba.njit(cache=True)
def _split(ix, p, k) -> None:
    """Move the upper half of the full block at position ``k`` into a spare block after it."""
    if ix.meta[p, _SPARE] == 0:
        n = _gather_keys(ix, p, ix.scratch)
        _repack(ix, p, ix.scratch[:n])
        return
    ix.meta[p, _SPARE] -= 1
    new = ix.spare[p, ix.meta[p, _SPARE]]
    b = ix.order[p, k]
    half = ix.fill[p, b] // 2
    moved = ix.fill[p, b] - half
    for j in range(moved):
        ix.keys[p, new, j] = ix.keys[p, b, half + j]
    ix.fill[p, b], ix.fill[p, new] = half, moved
    used = ix.meta[p, _USED]
    for i in range(used, k + 1, -1):  # open position k + 1
        ix.order[p, i], ix.head[p, i] = ix.order[p, i - 1], ix.head[p, i - 1]
    ix.order[p, k + 1], ix.head[p, k + 1] = new, ix.keys[p, new, 0]
    ix.meta[p, _USED] = used + 1
    _rebuild_fenwick(ix, p)


@numba.njit(cache=True)
def _drop(ix, p, k) -> None:
    """Give the empty block at position ``k`` back to the spares (one block always stays)."""
    used = ix.meta[p, _USED]
    ix.spare[p, ix.meta[p, _SPARE]] = ix.order[p, k]
    ix.meta[p, _SPARE] += 1
    for i in range(k, used - 1):
        ix.order[p, i], ix.head[p, i] = ix.order[p, i + 1], ix.head[p, i + 1]
    ix.meta[p, _USED] = used - 1
    _rebuild_fenwick(ix, p)


@numba.njit(cache=True, inline="always")
def _locate(ix, p, key, near):
    """Where ``key`` is or belongs in partition ``p``: its block's position ``k``, the block
    ``b``, the keys ``n`` the block holds, and the offset ``i`` in it. ``near``: a position to
    try first (found before the batch's earlier moves, which shift positions only when a block
    splits or empties), or -1."""
    used, k = ix.meta[p, _USED], near
    if not (0 <= k < used and (k == 0 or ix.head[p, k] <= key) and (k + 1 >= used or key < ix.head[p, k + 1])):
        k = _position_of(ix, p, key)
    b = ix.order[p, k]
    n = ix.fill[p, b]
    return k, b, n, _offset_in(ix.keys[p, b], n, key)


@numba.njit(cache=True, inline="always")
def insert(ix, p, key) -> None:
    _insert_at(ix, p, key, -1)


@numba.njit(cache=True, inline="always")
def _insert_at(ix, p, key, near) -> None:
    """Insert ``key``; ``near``: its block's position if known (checked), else -1."""
    k, b, n, i = _locate(ix, p, key, near)
    block = ix.keys[p, b]
    for j in range(n, i, -1):
        block[j] = block[j - 1]
    block[i] = key
    ix.fill[p, b] = n + 1
    if i == 0:
        ix.head[p, k] = key
    _fenwick_add(ix, p, k, 1)
    if n + 1 == len(block):
        _split(ix, p, k)


@numba.njit(cache=True, inline="always")
def remove(ix, p, key) -> None:
    """Remove a key that is in the index."""
    _remove_at(ix, p, key, -1)


@numba.njit(cache=True, inline="always")
def _remove_at(ix, p, key, near) -> None:
    k, b, n, i = _locate(ix, p, key, near)
    block = ix.keys[p, b]
    for j in range(i, n - 1):
        block[j] = block[j + 1]
    ix.fill[p, b] = n - 1
    _fenwick_add(ix, p, k, -1)
    if n == 1:
        if ix.meta[p, _USED] > 1:
            _drop(ix, p, k)
    elif i == 0:
        ix.head[p, k] = block[0]


@numba.njit(cache=True, inline="always")
def _block_at_rank(ix, p, rank):
    """The block and offset of the key of 0-based ``rank`` in partition ``p`` (``rank < keys``):
    a Fenwick descent over the blocks' counts."""
    fen = ix.fenwick[p]
    position, left = 0, rank
    step = 1
    while step * 2 < len(fen):
        step *= 2
    while step > 0:
        if position + step < len(fen) and fen[position + step] <= left:
            position += step
            left -= fen[position]
        step >>= 1
    return ix.order[p, position], left


@numba.njit(cache=True)
def rebuild(ix, priority_bits, stored, capacity) -> None:
    """Fill an index from every partition's stored slots and their priorities (after a load)."""
    for p in range(ix.meta.shape[0]):
        keys = np.empty(capacity, np.int64)
        n = 0
        for offset in range(capacity):
            s = p * capacity + offset
            if stored[s]:
                keys[n] = _key(priority_bits[s], s)
                n += 1
        _repack(ix, p, np.sort(keys[:n]))


# ---- the sampler's operations, one compiled call each ----------------------------------------


@numba.njit(cache=True, **NUMBA_WITHOUT_REFCOUNTS)
def write(ix, slots, priority_bits, generation, capacity, max_bits) -> None:
    """New experiences in ``slots``: each replaces the slot's old key (if any) and enters at
    the largest priority (``max_bits``); the slot's generation counts the write."""
    for s in slots:
        p = s // capacity
        if generation[s] > 0:
            remove(ix, p, _key(priority_bits[s], s))
        else:
            ix.meta[p, _KEYS] += 1
        priority_bits[s] = max_bits
        insert(ix, p, _key(max_bits, s))
        generation[s] += 1


@numba.njit(cache=True, inline="always")
def _positions_of(ix, parts, keys, out, length) -> None:
    """``_position_of`` for a batch of keys at once (``out[i]`` for ``keys[i]`` in partition
    ``parts[i]``): the binary searches advance in lockstep, so that each step's reads of the
    heads, one per key and independent of one another, overlap instead of queueing."""
    n = len(keys)
    for i in range(n):
        out[i] = 0
        length[i] = ix.meta[parts[i], _USED]
    searching = True
    while searching:
        searching = False
        for i in range(n):
            m = length[i]
            if m > 1:
                half = m >> 1
                out[i] += half * (ix.head[parts[i], out[i] + half] <= keys[i])
                length[i] = m - half
                searching = True


@numba.njit(cache=True, **NUMBA_WITHOUT_REFCOUNTS)
def reprioritise(ix, slots, new_bits, seen_generation, priority_bits, generation, capacity, work) -> int:
    """Move each slot to its new ``|delta|`` (float32 bits; the sign is dropped) unless it was
    rewritten since it was drawn (its generation moved on) or the value is not finite. Returns
    the bits of the largest priority set (0 if none). ``work``: int64 room of ``4 x 2 len(slots)``.

    In passes, so that the memory reads of different moves overlap: each slot's priority and
    generation are prefetched; the positions of its old and new keys are searched in lockstep
    and their blocks prefetched; then the moves, each trying the positions found first (earlier
    moves of the batch shift positions only when a block splits or empties)."""
    n = len(slots)
    parts, keys, found, length = work[0, : 2 * n], work[1, : 2 * n], work[2, : 2 * n], work[3, : 2 * n]
    for i in range(n):
        prefetch(priority_bits, slots[i])
        prefetch(generation, slots[i])
    for i in range(n):
        s = slots[i]
        parts[2 * i] = parts[2 * i + 1] = s // capacity
        keys[2 * i] = _key(priority_bits[s], s)
        keys[2 * i + 1] = _key(new_bits[i] & 0x7FFFFFFF, s)
    _positions_of(ix, parts, keys, found, length)
    for j in range(2 * n):
        block = ix.keys[parts[j], ix.order[parts[j], found[j]]]
        for offset in range(0, len(block), 8):  # 8 keys a 64-byte line
            prefetch(block, offset)
    largest = 0
    for i in range(n):
        s, bits = slots[i], new_bits[i] & 0x7FFFFFFF
        if generation[s] != seen_generation[i] or bits >= _FINITE:
            continue
        p = s // capacity
        _remove_at(ix, p, _key(priority_bits[s], s), found[2 * i])
        priority_bits[s] = bits
        _insert_at(ix, p, _key(bits, s), found[2 * i + 1])
        largest = max(largest, bits)
    return largest


def rank_search_guide(rank_mass: np.ndarray, buckets: int = 1 << 16) -> np.ndarray:
    """For ``G`` equal steps of the total mass, the first rank whose prefix mass passes each
    step: a draw's rank then lies between two neighbouring entries (a few ranks apart), so its
    exact search reads a few cache lines of ``rank_mass`` instead of 18 levels of it."""
    steps = np.arange(buckets + 1) * (rank_mass[-1] / buckets)
    return np.searchsorted(rank_mass, steps, side="right").astype(np.int64)


@numba.njit(cache=True)
def _inverse_rank(rank_mass, guide, x) -> int:
    """The first 0-based rank whose prefix mass exceeds ``x``: exact, searched between the
    guide entries around ``x`` (one bucket either side absorbs rounding)."""
    buckets = len(guide) - 1
    k = int(x * buckets / rank_mass[-1])
    lo, hi = guide[max(k - 1, 0)], guide[min(k + 2, buckets)]
    while lo < hi:
        mid = (lo + hi) >> 1
        if rank_mass[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return min(lo, len(rank_mass) - 1)


@numba.njit(cache=True)
def draw_uniform(u, sizes, capacity, generation, counts):
    """Uniform over the stored experiences: for each uniform ``u[i]``, the ``floor(u[i] N)``-th
    stored one (partition by partition, each filled from its block's start). Returns slots and
    their generations, and adds each partition's draws to ``counts``."""
    n = len(u)
    stored = sizes.sum()
    slots, seen = np.empty(n, np.int64), np.empty(n, np.int32)
    for i in range(n):
        left = min(int(u[i] * stored), stored - 1)
        p = 0
        while left >= sizes[p]:
            left -= sizes[p]
            p += 1
        slots[i] = p * capacity + left
        seen[i] = generation[slots[i]]
        counts[p] += 1
    return slots, seen


@numba.njit(cache=True)
def draw_ranked(ix, u, visits, rank_mass, rank_guide, beta, generation, capacity, counts):
    """Steps 3-5 for each pair of uniforms ``u[:, i]``: partition ``j`` with ``P_j = N_j / sum_k N_k``,
    then rank ``r`` with ``P_j[r] = r^-alpha / sum_t t^-alpha`` over its ``n_j`` experiences (an
    inverse-CDF search in the prefix sums ``rank_mass`` of ``t^-alpha``), and the weight
    ``(P_j P_j[r])^-beta`` over its batch maximum. Returns slots, weights and the slots' generations,
    and adds to ``counts`` (``p + 3``: the draws of each partition, then one batch, its mean weight
    and its effective size ``(sum w)^2 / sum w^2``).

    In passes over the batch (ranks, then blocks, then keys), so that the memory reads of
    different draws overlap instead of waiting for one another."""
    n = u.shape[1]
    cumulative = np.cumsum(visits)
    total_visits = cumulative[-1]
    part, rank = np.empty(n, np.int64), np.empty(n, np.int64)
    probability = np.empty(n, np.float64)
    for i in range(n):
        p = min(np.searchsorted(cumulative, u[0, i] * total_visits, side="right"), len(visits) - 1)
        size = ix.meta[p, _KEYS]
        mass = rank_mass[size - 1]
        r = min(_inverse_rank(rank_mass, rank_guide, u[1, i] * mass), size - 1)
        rank_weight = rank_mass[r] - rank_mass[r - 1] if r > 0 else rank_mass[0]  # (r + 1)^-alpha
        part[i], rank[i] = p, r
        probability[i] = visits[p] / (total_visits * mass) * rank_weight
    block, offset = np.empty(n, np.int64), np.empty(n, np.int64)
    for i in range(n):
        block[i], offset[i] = _block_at_rank(ix, part[i], rank[i])
    slots = np.empty(n, np.int64)
    for i in range(n):
        slots[i] = ix.keys[part[i], block[i], offset[i]] & 0xFFFFFFFF
    seen = np.empty(n, np.int32)
    for i in range(n):
        seen[i] = generation[slots[i]]
    weight = np.empty(n, np.float32)
    smallest = probability.min()
    total, squares = 0.0, 0.0
    for i in range(n):
        weight[i] = (smallest / probability[i]) ** beta  # (N P)^-beta / max (N P)^-beta: N cancels
        total += weight[i]
        squares += weight[i] * weight[i]
        counts[part[i]] += 1
    partitions = len(visits)
    counts[partitions] += 1
    counts[partitions + 1] += total / n
    counts[partitions + 2] += total * total / max(squares, 1e-30)
    return slots, weight, seen
