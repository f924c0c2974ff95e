"""`python -m mtl_jax.convert SUBCOMMAND [flags]`: the package docstring lists the subcommands."""

import sys

from mtl_jax.convert import main

if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
