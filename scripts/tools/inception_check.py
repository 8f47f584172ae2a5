#!/usr/bin/env python3
"""INCEpTION's side of the external recommender protocol, for crates/serve/tests/http.rs: a CAS built
with dkpro-cassis (the library INCEpTION's Python recommenders use) with a NamedEntity layer as
INCEpTION sends it, POSTed to SERVER/predict; the XMI that comes back is loaded with cassis against the
same type system and its predicted annotations printed as JSON (begin/end as cassis gives them,
i.e. code points, the covered text, the feature value, the predicted flag and the score).

    python3 scripts/tools/inception_check.py http://127.0.0.1:PORT "document text"
"""
import json
import sys
import urllib.request

from cassis import Cas, TypeSystem, load_cas_from_xmi

LAYER = "de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity"


def main():
    url, text = sys.argv[1], sys.argv[2]
    ts = TypeSystem()
    ne = ts.create_type(LAYER, supertypeName="uima.tcas.Annotation")
    ts.create_feature(ne, "value", "uima.cas.String")
    ts.create_feature(ne, "value_score", "uima.cas.Double")
    ts.create_feature(ne, "inception_internal_predicted", "uima.cas.Boolean")
    cas = Cas(typesystem=ts)
    cas.sofa_string = text
    body = {
        "metadata": {"layer": LAYER, "feature": "value", "projectId": 1, "anchoringMode": "tokens",
                     "crossSentence": False},
        "document": {"xmi": cas.to_xmi(), "documentId": 7, "userId": "annotator"},
        "typeSystem": ts.to_xml(),
    }
    req = urllib.request.Request(url + "/predict", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        answer = json.load(resp)
    back = load_cas_from_xmi(answer["document"], typesystem=ts)
    out = [{"begin": a.begin, "end": a.end, "text": a.get_covered_text(), "value": a.value,
            "predicted": a.inception_internal_predicted, "score": a.value_score}
           for a in back.select(LAYER)]
    assert back.sofa_string == text
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
