"""``python -m ocrtune``: the CLI where no ``ocrtune`` script is installed (a checkout on PYTHONPATH)."""

from ocrtune.cli.app import main

if __name__ == "__main__":
    main()
