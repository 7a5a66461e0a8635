"""Write a wrk Lua script that POSTs one text a request to `llmcls serve`'s /v1/predict, cycling through a file's
texts (the light load generator of BENCHMARKS.md's serving runs: wrk costs the server far less CPU than a Python
client on the same cores).

Usage: python scripts/make_wrk_script.py data/sst2/test.csv post.lua
       wrk -t1 -c64 -d15s --latency -s post.lua http://127.0.0.1:8812
"""

import json
import sys

from llmcls.data.readers import read_texts


def main(data: str, out: str) -> None:
    bodies = [json.dumps({"texts": [text]}) for text in read_texts(data)]
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"', "local bodies = {"]
    lines += [f"  [==[{body}]==]," for body in bodies]  # json.dumps escapes non-ASCII, so no "]==]" can occur
    lines += [
        "}",
        "local i = 0",
        "request = function()",
        "  i = i % #bodies + 1",
        '  return wrk.format(nil, "/v1/predict", nil, bodies[i])',
        "end",
        "response = function(status)",
        '  if status ~= 200 then io.write("status " .. status .. "\\n") end',
        "end",
    ]
    with open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
