"""Benchmark helper (benches/bench.sh): the same strict parse as examples/parse_ndjson.rs, in
Python's fhir.resources (pydantic models; R4B, its nearest to R4), one thread. Prints one JSON
line. Usage: python3 benches/parse_fhir_resources.py FILE.ndjson"""
import json
import re
import sys
import time

from fhir.resources.R4B import get_fhir_model_class

lines = [l for l in open(sys.argv[1], "rb").read().split(b"\n") if l.strip()]
classes = {}
TYPE = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]+)"')
t = time.perf_counter()
bad = 0
for l in lines:
    # The type is read the way fastkontakt's stream peeks it, then the model parses the line.
    rt = TYPE.search(l).group(1).decode()
    cls = classes.get(rt) or classes.setdefault(rt, get_fhir_model_class(rt))
    try:
        cls.model_validate_json(l)
    except Exception:
        bad += 1
secs = time.perf_counter() - t
print(json.dumps({"resources": len(lines), "bytes": sum(len(l) + 1 for l in lines),
                  "invalid": bad, "seconds_one_thread": round(secs, 3)}))
