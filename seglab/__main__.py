"""`python -m seglab ...`: the same command as `seglab ...`."""

from seglab.cli.app import main

if __name__ == "__main__":
    main()
