"""binfmt_misc entry flags: P preserve-argv0, O open-binary, C credentials, F fix-binary."""

from __future__ import annotations

from dataclasses import dataclass

# The order the kernel prints them in an entry file.
KERNEL_ORDER = "POCF"
MEANING = {
    "P": "preserve-argv0",
    "O": "open-binary",
    "C": "credentials",
    "F": "fix-binary",
}


@dataclass(frozen=True, order=True)
class Flags:
    """A normalised flag set. `C` implies `O`, as in the kernel, so equal sets compare equal."""

    letters: str = ""

    def __eq__(self, other: object) -> bool:  # (as dataclass's, without building tuples)
        return self.letters == other.letters if isinstance(other, Flags) else NotImplemented

    @classmethod
    def parse(cls, text: str, strict: bool = True) -> Flags:
        """`strict`: an unknown letter is an error, else ignored (a newer kernel's flag)."""
        bad = sorted(set(text) - set(KERNEL_ORDER))
        if bad and strict:
            raise ValueError(f"unknown flag {bad[0]!r}")
        chosen = set(text)
        if "C" in chosen:
            chosen.add("O")
        return cls("".join(f for f in KERNEL_ORDER if f in chosen))

    def without(self, letter: str) -> Flags:
        """These flags less `letter` (less C keeps the O it implied: harmless alone)."""
        return Flags(self.letters.replace(letter, ""))

    def __contains__(self, letter: object) -> bool:
        return isinstance(letter, str) and len(letter) == 1 and letter in self.letters

    def __str__(self) -> str:
        return self.letters
