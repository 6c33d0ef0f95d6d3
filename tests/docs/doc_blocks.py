#!/usr/bin/env python3
"""Turns every C++ block of the docs into code the build compiles.

    doc_blocks.py OUT_DIR FILE.md...

Each ```cpp block must follow a directive comment saying how it is tested:

    <!-- doc-test: program NAME -->        part of a complete program NAME: the
                                           program's blocks, in order, make one
                                           translation unit, built and run by CTest
    <!-- doc-test: fragment CONTEXT [(PARAMS)] -->
                                           statements: the body of a coroutine
                                           after tests/docs/contexts/CONTEXT.hpp,
                                           whose parameters are PARAMS or the
                                           context's DOC_FRAGMENT_PARAMS
                                           ("program:NAME": the program's blocks
                                           but its main() are the context;
                                           "previous": the block before)
    <!-- doc-test: declarations CONTEXT --> namespace-scope code after CONTEXT

A block without a directive fails: every block a reader sees is compiled.
Lines that are only "..." (elided code) become comments; a fragment's leading
#include lines go to the top of its file. Writes OUT_DIR/blocks.cmake, which
lists the generated sources for tests/docs/CMakeLists.txt.
"""
import os
import re
import sys

BLOCK = re.compile(r"(?:<!--\s*doc-test:\s*(.*?)\s*-->\s*\n)?```cpp\n(.*?)```", re.S)


def fail(message):
    sys.stderr.write("doc_blocks.py: " + message + "\n")
    sys.exit(1)


def elide(code):
    return re.sub(r"^(\s*)\.\.\.\s*$", r"\1// ...", code, flags=re.M)


def split_includes(code):
    includes, rest = [], []
    for line in code.splitlines():
        (includes if line.startswith("#include") else rest).append(line)
    return "\n".join(includes), "\n".join(rest)


def main():
    out_dir, docs = sys.argv[1], sys.argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    programs = {}  # name -> [(where, code, is_main)]
    units = []  # (name, source text)
    for path in docs:
        text = open(path, encoding="utf-8").read()
        base = os.path.splitext(os.path.basename(path))[0].replace("-", "_").lower()
        for n, m in enumerate(BLOCK.finditer(text)):
            line = text.count("\n", 0, m.start()) + 1
            where = f"{os.path.basename(path)}:{line}"
            directive, code = m.group(1), elide(m.group(2))
            if not directive:
                fail(f"{where}: a ```cpp block without a <!-- doc-test: ... --> directive")
            m2 = re.match(r"(\w+)\s*(\S*)\s*(\(.*\))?\s*$", directive)
            if not m2:
                fail(f"{where}: cannot read the directive '{directive}'")
            kind, arg, explicit = m2.group(1), m2.group(2), m2.group(3)
            marker = f'// {where}\n#line {line + 2} "{os.path.abspath(path)}"\n'
            if kind == "program":
                programs.setdefault(arg, []).append((marker, code, "int main(" in code))
            elif kind in ("fragment", "declarations"):
                includes, body = split_includes(code)
                if arg == "previous":
                    # The block just before (its declarations) is the context.
                    if not units:
                        fail(f"{where}: 'previous' names no block")
                    context = units[-1][1]
                elif arg.startswith("program:"):
                    name = arg.split(":", 1)[1]
                    if name not in programs:
                        fail(f"{where}: program '{name}' is not defined above")
                    # The program's blocks but its main: its declarations.
                    context = "".join(mk + c + "\n" for mk, c, is_main in programs[name] if not is_main)
                else:
                    context = f'#include "contexts/{arg}.hpp"\n'
                params = explicit[1:-1] if explicit else "DOC_FRAGMENT_PARAMS"
                src = includes + "\n" + context + "\n"
                if kind == "fragment":
                    src += (f"boost::asio::awaitable<void> doc_block_{base}_{n}({params}) {{\n"
                            f"{marker}{body}\n    co_return;\n}}\n")
                else:
                    src += marker + body + "\n"
                units.append((f"{base}_{n}", src))
            else:
                fail(f"{where}: unknown doc-test kind '{kind}'")
    cmake = []
    for name, src in units:
        file = os.path.join(out_dir, f"block_{name}.cpp")
        write_if_changed(file, src)
        cmake.append(f'list(APPEND DOC_BLOCK_SOURCES "{file}")')
    for name, blocks in programs.items():
        file = os.path.join(out_dir, f"program_{name}.cpp")
        write_if_changed(file, "".join(marker + code + "\n" for marker, code, _ in blocks))
        if not any(is_main for _, _, is_main in blocks):
            fail(f"program '{name}' has no main()")
        cmake.append(f'list(APPEND DOC_PROGRAMS "{name}")')
        cmake.append(f'set(DOC_PROGRAM_{name} "{file}")')
    write_if_changed(os.path.join(out_dir, "blocks.cmake"), "\n".join(cmake) + "\n")


def write_if_changed(path, text):
    # Unchanged files keep their time: the build recompiles only what changed.
    if os.path.exists(path) and open(path, encoding="utf-8").read() == text:
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
