"""Train hf-fiqa models: ``accelerate launch train.py --config hub_configs/maniqa-sdd-fiqa.yaml [key=value ...]``.

The same command runs on a CPU, one GPU, several GPUs or several nodes; see README.md ("Training").
"""

import sys

from hf_fiqa.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
