"""benchdoc.py - the one place the benchmark scripts write docs/BENCHMARKS.md:
each owns one "## " section, replaced in place (or appended) on every run."""
import pathlib

PATH = pathlib.Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def write_section(heading, text):
    """Replaces the section that starts with the line `heading` (up to the
    next "## " heading) by text, which starts with that heading itself."""
    old = PATH.read_text() if PATH.exists() else "# Benchmarks\n"
    if heading + "\n" in old:
        start = old.index(heading + "\n")
        end = old.find("\n## ", start + len(heading))
        new = old[:start] + text + (old[end + 1:] if end >= 0 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    PATH.write_text(new)
    print(f"wrote {PATH}")


def publish(heading, text, write):
    """Prints a benchmark's section and, when write, puts it in the file."""
    print(text)
    if write:
        write_section(heading, text)
