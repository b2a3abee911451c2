"""flask-smorest pagination, as its documentation shows it, for third_party.py.

Run by benchmarks/.third_party/venv/bin/python (Flask is not in harvester's .venv):
    python smorest_app.py DATA.json PORT

GET /items/  ?page=&page_size=, the body a bare list, the metadata in a JSON-valued header:
             X-Pagination: {"total": N, "total_pages": P, "first_page": 1, "last_page": P,
             "page": p, "next_page": p+1, ...}; page_size is capped at 100 (422 above).
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import marshmallow as ma
from flask import Flask
from flask.views import MethodView
from flask_smorest import Api, Blueprint, Page


class ItemSchema(ma.Schema):
    id = ma.fields.Int()
    seq = ma.fields.Int()
    name = ma.fields.Str()
    text = ma.fields.Str()
    big = ma.fields.Int()
    ratio = ma.fields.Float()
    dec = ma.fields.Decimal()


def make_app(items: list[dict[str, Any]]) -> Flask:
    app = Flask(__name__)
    app.config.update(API_TITLE="bench", API_VERSION="1", OPENAPI_VERSION="3.0.2")
    api = Api(app)
    blp = Blueprint("items", __name__, url_prefix="/items")

    @blp.route("/")
    class Items(MethodView):
        @blp.response(200, ItemSchema(many=True))
        @blp.paginate(Page)
        def get(self) -> list[dict[str, Any]]:
            return items

    api.register_blueprint(blp)
    return app


def main() -> None:
    data, port = Path(sys.argv[1]), int(sys.argv[2])
    rows = json.loads(data.read_text(encoding="utf-8"), parse_float=Decimal)
    items = [{**row, "ratio": float(row["ratio"])} for row in rows]
    make_app(items).run(host="127.0.0.1", port=port, threaded=True)


if __name__ == "__main__":
    main()
