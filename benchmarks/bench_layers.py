"""Core-layer benchmark: rnnkit.RNN/LSTM/GRU (auto, loop) vs torch.nn; see benchmarks/README.md.

    python benchmarks/bench_layers.py            # full run -> benchmarks/results/core_layers_cpu.json
    python benchmarks/bench_layers.py --quick    # smoke run, about a minute on 2 cores
    python benchmarks/bench_layers.py --help
"""
import sys

from rnnkit.commands.bench_layers import main

if __name__ == "__main__":
    sys.exit(main(prog="bench_layers.py"))
