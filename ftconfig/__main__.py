"""`python -m ftconfig CONFIG …` is `ftrun CONFIG …` (handy under `torchrun -m ftconfig`)."""

from ftconfig._ftrun_cli import main

main()
