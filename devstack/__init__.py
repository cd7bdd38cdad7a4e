"""The local stack: every service of wagate on loopback, offline (SPEC §8).

`stack.Stack` starts and stops processes; `demo` is the README's first command; `checks` is
its second (every quality gate and the tests); `prereqs` explains missing tools.
"""
