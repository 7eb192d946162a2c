"""``python -m edgecv`` runs the same CLI as the ``edgecv`` console script."""
from edgecv.cli import main

if __name__ == "__main__":
    main()
