"""`python -m clearing OBLIGATIONS.csv [-o RESULT.csv] [--summary SUMMARY.json] [--scale 2]`."""

from clearing.cli import main

main()
