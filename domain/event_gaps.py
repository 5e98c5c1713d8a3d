"""Which of a session's sequence numbers are missing: the gaps a client's lost batches leave,
found from the numbers stored, less those deleted since (they arrived)."""

from collections.abc import Iterable, Sequence


def find_gaps(sequence_numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Ranges of missing sequence numbers, from 1 to the highest seen (input sorted ascending)."""
    gaps: list[tuple[int, int]] = []
    expected = 1
    for number in sequence_numbers:
        if number > expected:
            gaps.append((expected, number - 1))
        expected = max(expected, number + 1)
    return gaps


def as_ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Numbers as the fewest ranges (first, last) that hold exactly them, in order."""
    ranges: list[tuple[int, int]] = []
    for number in sorted(set(numbers)):
        if ranges and ranges[-1][1] == number - 1:
            ranges[-1] = (ranges[-1][0], number)
        else:
            ranges.append((number, number))
    return ranges


def merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges joined where they overlap or touch, in order."""
    joined: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if joined and first <= joined[-1][1] + 1:
            joined[-1] = (joined[-1][0], max(joined[-1][1], last))
        else:
            joined.append((first, last))
    return joined


def deleted_too(
    deleted: Iterable[tuple[int, int]], numbers: Iterable[int]
) -> list[tuple[int, int]]:
    """The ranges of numbers `deleted`, with these numbers deleted too."""
    return merged([*deleted, *as_ranges(numbers)])


def gaps_beside_deleted(
    found: Iterable[Sequence[int]],
    highest_stored: int,
    highest: int,
    deleted: Sequence[tuple[int, int]],
) -> list[tuple[int, int]]:
    """A session's missing numbers when some of its events were deleted: those `found`
    missing among the events stored (up to `highest_stored`; ranges in order) and every number
    above them up to the `highest` ever stored, less the numbers `deleted` (ranges in order),
    which did arrive. With none deleted, those `found`. One walk through both."""
    missing = [(first, last) for first, last in found]
    if not deleted:
        return missing
    if highest > highest_stored:
        missing.append((highest_stored + 1, highest))
    gaps: list[tuple[int, int]] = []
    gone = 0  # the first deleted range that may still meet a missing one
    for first, last in missing:
        while gone < len(deleted) and deleted[gone][1] < first:
            gone += 1
        meeting = gone
        while first <= last and meeting < len(deleted) and deleted[meeting][0] <= last:
            gone_first, gone_last = deleted[meeting]
            if gone_first > first:
                gaps.append((first, gone_first - 1))
            first = max(first, gone_last + 1)
            meeting += 1
        if first <= last:
            gaps.append((first, last))
    return gaps
