"""Benchmark: the planted ONNX file in onnxruntime-node and onnxruntime-web (wasm, headless
Chromium), the npm runtimes of the runtime matrix (``benchmarks/onnx_runtime_matrix.py``).

Installs ``onnxruntime-node`` and ``onnxruntime-web`` with npm into a temporary folder, plants
hosts (as the Python matrix), and runs honest and planted files on the same inputs in Node and
in a headless Chromium page (served from 127.0.0.1; the page posts its outputs back). Python
then compares bit for bit: clean outputs (natural and uniform random inputs) identical to the
honest file's in that runtime, every activated input forced to its target, and the accepted
rows of the trigger battery equal to PyNaCl's; ``clean_time_ratio``: median over the clean
batches of 1,000 (one pass, after a warm-up batch) of planted / honest run time. Says so
plainly when Node, npm or Chromium is absent (``apt-get install chromium``) and skips that
runtime.

Run: PYTHONPATH=src .venv/bin/python benchmarks/onnx_npm_matrix.py [--natural 10000]
     [--random 10000] [--triggers 20] [--hosts torch_mlp_u8 ...] [--version 1.30.0]
     [--verifier fast|portable] [--out npm-matrix.json]
"""

from __future__ import annotations

import argparse
import http.server
import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.experiments.onnx.matrix import _row_differs, bits_equal
from backdoors.experiments.onnx.runtimes import trigger_battery

NODE_JS = r"""
const ort = require('onnxruntime-node');
const fs = require('fs');
const cfg = JSON.parse(fs.readFileSync(process.argv[2]));
(async () => {
  const out = {};
  for (const f of cfg.files) {
    const t0 = Date.now();
    const s = await ort.InferenceSession.create(cfg.dir + '/' + f + '.onnx',
      {intraOpNumThreads: 1, interOpNumThreads: 1});
    const res = [], times = [];
    for (const b of cfg.batches) {
      const buf = fs.readFileSync(cfg.dir + '/' + b.file);
      const data = cfg.dtype === 'uint8' ? new Uint8Array(buf) :
        new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
      const feed = {[s.inputNames[0]]: new ort.Tensor(cfg.dtype, data, b.shape)};
      const t1 = performance.now();
      const r = await s.run(feed);
      times.push(performance.now() - t1);
      res.push(s.outputNames.map(n => Buffer.from(r[n].data.buffer,
        r[n].data.byteOffset, r[n].data.byteLength).toString('base64')));
    }
    out[f] = {outputs: res, ms: Date.now() - t0, times: times};
  }
  fs.writeFileSync(cfg.dir + '/node_out.json', JSON.stringify(out));
})().catch(e => { console.error(String(e)); process.exit(3); });
"""

WEB_HTML = r"""<!doctype html><script src="ort.wasm.min.js"></script><script>
(async () => {
  const post = (o) => fetch('/result', {method: 'POST', body: JSON.stringify(o)});
  try {
    ort.env.wasm.numThreads = 1;
    const cfg = await (await fetch('cfg.json')).json();
    const out = {};
    for (const f of cfg.files) {
      const t0 = performance.now();
      const s = await ort.InferenceSession.create(f + '.onnx', {executionProviders: ['wasm']});
      const res = [], times = [];
      for (const b of cfg.batches) {
        const buf = await (await fetch(b.file)).arrayBuffer();
        const data = cfg.dtype === 'uint8' ? new Uint8Array(buf) : new Float32Array(buf);
        const feed = {[s.inputNames[0]]: new ort.Tensor(cfg.dtype, data, b.shape)};
        const t1 = performance.now();
        const r = await s.run(feed);
        times.push(performance.now() - t1);
        res.push(s.outputNames.map(n => {
          const d = r[n].data; const u = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
          let bin = ''; for (let i = 0; i < u.length; i += 8192)
            bin += String.fromCharCode.apply(null, u.subarray(i, i + 8192));
          return btoa(bin); }));
      }
      out[f] = {outputs: res, ms: performance.now() - t0, times: times};
    }
    await post(out);
  } catch (e) { await post({error: String(e)}); }
})();
</script>"""


def _decode(b64: str, like: np.ndarray) -> np.ndarray:
    import base64

    return np.frombuffer(base64.b64decode(b64), dtype=like.dtype).reshape(like.shape)


def _serve(folder: Path, timeout: float) -> dict[str, Any] | None:
    """Serve ``folder`` on 127.0.0.1, open it in headless Chromium, return the posted JSON."""
    box: dict[str, Any] = {}

    class H(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(folder), **k)

        def do_POST(self) -> None:
            n = int(self.headers["Content-Length"])
            box["result"] = json.loads(self.rfile.read(n))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    prof = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [exe, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={prof}",
         "--remote-debugging-port=0", f"http://127.0.0.1:{srv.server_port}/index.html"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    t0 = time.time()
    while "result" not in box and time.time() - t0 < timeout and proc.poll() is None:
        time.sleep(0.5)
    proc.terminate()
    proc.wait(10)
    srv.shutdown()
    shutil.rmtree(prof, ignore_errors=True)
    return box.get("result")


def _compare(name: str, raw: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """Bit comparisons of one npm runtime's outputs (``raw``) against the expectations."""
    if raw is None or "error" in raw:
        return {"runtime": name, "status": "FAIL", "reason": (raw or {}).get("error", "no answer")}
    h, b = raw["host"]["outputs"], raw["planted"]["outputs"]
    like = ref["like"]
    rec: dict[str, Any] = {"runtime": name}
    clean = all(
        bits_equal(_decode(x, lk), _decode(y, lk))
        for bh, bb, lks in zip(h[:-1], b[:-1], like[:-1], strict=True)
        for x, y, lk in zip(bh, bb, lks, strict=True)
    )
    oh = [_decode(x, lk) for x, lk in zip(h[-1], like[-1], strict=True)]
    ob = [_decode(x, lk) for x, lk in zip(b[-1], like[-1], strict=True)]
    acc = np.zeros(len(ref["verdicts"]), bool)
    for x, y in zip(oh, ob, strict=True):
        acc |= _row_differs(x, y)
    n = ref["n_valid"]
    fired = acc[:n] & (np.asarray(ob[0]).argmax(axis=1)[:n] == ref["verdicts"][:n])
    rec.update(
        clean_inputs=ref["n_clean"], clean_identical=bool(clean), triggers=n,
        triggers_fired=int(fired.sum()), verdict_inputs=len(acc),
        verdicts_match_pynacl=bool((acc == (ref["verdicts"] >= 0)).all()),
        ms_host=raw["host"]["ms"], ms_planted=raw["planted"]["ms"],
    )  # fmt: skip
    th, tb = raw["host"].get("times"), raw["planted"].get("times")
    if th and len(th) > 2:  # clean batches of 1,000 after the first (warm-up); the last batch
        # is the trigger battery. Median over batches of planted / honest time.
        r = [y / max(x, 1e-9) for x, y in zip(th[1:-1], tb[1:-1], strict=True)]
        rec["clean_time_ratio"] = round(float(np.median(r)), 3)
    ok = clean and rec["triggers_fired"] == n and rec["verdicts_match_pynacl"]
    rec["status"] = "pass" if ok else "FAIL"
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--natural", type=int, default=10_000)
    ap.add_argument("--random", type=int, default=10_000)
    ap.add_argument("--triggers", type=int, default=20)
    ap.add_argument("--hosts", nargs="*", default=["torch_mlp_u8", "torch_cnn_f32"])
    ap.add_argument("--version", default="1.30.0")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--verifier", default="fast", help="in-graph verifier profile: fast, portable")
    ap.add_argument("--out", type=Path, help="write the results as a JSON record")
    a = ap.parse_args()
    t_start = time.perf_counter()
    results: dict[str, Any] = {}
    versions: dict[str, str] = {}

    def save() -> None:
        if a.out:
            from backdoors.artifacts.records import make_record

            params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
            rec = make_record("onnx-npm-matrix", params, 11, {"results": results},
                              {"total": round(time.perf_counter() - t_start, 1)})  # fmt: skip
            rec["versions"].update(versions)
            a.out.write_text(json.dumps(rec, indent=1, default=str))

    node, npm = shutil.which("node"), shutil.which("npm")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if node is None or npm is None:
        msg = "Node.js / npm is ABSENT on this machine: onnxruntime-node and -web not run"
        print(msg)
        results["skipped"] = msg
        save()
        return
    versions["node"] = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    if chrome is None:
        print("Chromium is ABSENT (apt-get install chromium): onnxruntime-web is not run")
    else:
        r = subprocess.run([chrome, "--version"], capture_output=True, text=True)
        versions["chromium"] = r.stdout.strip() or r.stderr.strip()[-200:]
    from onnx_runtime_matrix import make_host

    from backdoors.experiments.onnx.hosts import SCALE
    from backdoors.experiments.onnx.runtimes import RUNTIMES
    from backdoors.models import data
    from backdoors.signature.onnx.plant import graph_input, plant

    mn = data.mnist(n_train=3000, n_test=max(a.natural, a.triggers))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pkgs = [f"onnxruntime-node@{a.version}", f"onnxruntime-web@{a.version}"]
        cmd = [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(d)]
        r = subprocess.run([*cmd, *pkgs],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            print("npm install failed:", r.stderr.strip().splitlines()[-3:])
            results["skipped"] = "npm install failed: " + r.stderr.strip()[-300:]
            save()
            return
        versions["onnxruntime-node/web"] = a.version
        print(f"npm: installed {' '.join(pkgs)} into {d} (--ignore-scripts: onnxruntime-node's "
              "install script only fetches the CUDA provider, from nuget.org)")  # fmt: skip
        for h in a.hosts:
            model, kind = make_host(h, mn.X_train, mn.y_train)
            scale = 1.0 if kind == "uint8" else SCALE
            bd, key = plant(model, input_scale=scale, random_state=11, profile=a.verifier)
            shape = [d_.dim_value for d_ in graph_input(model).type.tensor_type.shape.dim[1:]]
            rng = np.random.default_rng(7)
            X_rand = rng.integers(0, 256, (a.random, 784), dtype=np.uint8)
            cases = trigger_battery(key, mn.X_test[: a.triggers], rng)
            C = np.concatenate(list(cases.values()))
            batches = [mn.X_test[: a.natural][i : i + 1000] for i in range(0, a.natural, 1000)]
            batches += [X_rand[i : i + 1000] for i in range(0, a.random, 1000)] + [C]
            web = d / "web"
            web.mkdir(exist_ok=True)
            cfg = {"dir": str(d), "files": ["host", "planted"], "dtype": kind, "batches": []}
            for i, X in enumerate(batches):
                x = X if kind == "uint8" else np.asarray(X, np.float32) / np.float32(255)
                (d / f"b{i}.bin").write_bytes(np.ascontiguousarray(x).tobytes())
                shutil.copy(d / f"b{i}.bin", web / f"b{i}.bin")
                cfg["batches"].append({"file": f"b{i}.bin", "shape": [len(X), *shape]})
            for f, m in (("host", model), ("planted", bd)):
                (d / f"{f}.onnx").write_bytes(m.SerializeToString())
                shutil.copy(d / f"{f}.onnx", web / f"{f}.onnx")
            run_h = RUNTIMES.get("onnxruntime")(model.SerializeToString())  # output layouts
            like = []
            for b in cfg["batches"]:
                xb = np.fromfile(d / b["file"], np.uint8 if kind == "uint8" else np.float32)
                like.append([np.asarray(o) for o in run_h(xb.reshape(b["shape"]))])
            ref = {"like": like, "verdicts": key.spec.verify(C), "n_valid": len(cases["valid"]),
                   "n_clean": a.natural + a.random}  # fmt: skip
            (d / "cfg.json").write_text(json.dumps(cfg))
            (d / "run.js").write_text(NODE_JS)
            p = subprocess.run([node, str(d / "run.js"), str(d / "cfg.json")], cwd=d,
                               capture_output=True, text=True, timeout=a.timeout)  # fmt: skip
            raw = json.loads((d / "node_out.json").read_text()) if p.returncode == 0 else None
            if raw is None:
                raw = {"error": p.stderr.strip()[-300:]}
            results[h] = {"onnxruntime-node": _compare("onnxruntime-node", raw, ref)}
            print(h, json.dumps(results[h]["onnxruntime-node"]), flush=True)
            save()
            if chrome is None:
                rec = {"runtime": "onnxruntime-web", "status": "not run: Chromium ABSENT"}
                results[h]["onnxruntime-web (wasm, Chromium)"] = rec
                print(h, json.dumps(rec))
                save()
                continue
            dist = d / "node_modules" / "onnxruntime-web" / "dist"
            for f in dist.iterdir():
                if f.name.startswith("ort.wasm.min.js") or f.suffix in (".wasm", ".mjs"):
                    shutil.copy(f, web / f.name)
            (web / "cfg.json").write_text(json.dumps({**cfg, "dir": "."}))
            (web / "index.html").write_text(WEB_HTML)
            raw = _serve(web, a.timeout)
            rec = _compare("onnxruntime-web (wasm, Chromium)", raw, ref)
            results[h]["onnxruntime-web (wasm, Chromium)"] = rec
            print(h, json.dumps(rec), flush=True)
            save()


if __name__ == "__main__":
    main()
