"""A minimal single-file Django REST Framework project on sqlite, for third_party.py.

Run by benchmarks/.third_party/venv/bin/python (Django is not in harvester's .venv):
    python drf_app.py DATA.json PORT WORKDIR

GET /page/    PageNumberPagination: ?page=&page_size=, body count, next, previous, results;
              404 past the last page
GET /limit/   LimitOffsetPagination: ?limit=&offset=, body count, next, previous, results
GET /cursor/  CursorPagination ordered by seq: ?page_size=&cursor=, body next, previous, results
Every page size is capped at 100 (max_page_size, max_limit): more is silently cut to 100, as DRF
does. Filters as django-filter would offer them: seq__gte, seq__lt (half-open) and seq__lte.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import django
from django.conf import settings


def configure(workdir: Path) -> None:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        SECRET_KEY="third-party-benchmark",
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(workdir / "drf.db")}
        },
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        },
        USE_TZ=True,
    )
    django.setup()


configure(Path(sys.argv[3]))

from django.db import connection, models  # noqa: E402  (after settings.configure)
from django.urls import path  # noqa: E402
from rest_framework import generics, pagination, serializers  # noqa: E402


class Item(models.Model):
    seq = models.IntegerField(unique=True)
    name = models.TextField()
    text = models.TextField()
    big = models.TextField()  # sqlite integers stop at 2**63 - 1: the digits, served as an int
    ratio = models.FloatField()
    dec = models.DecimalField(max_digits=40, decimal_places=25)

    class Meta:
        app_label = "bench"
        ordering = ["seq"]


class ItemSerializer(serializers.ModelSerializer):
    big = serializers.SerializerMethodField()
    dec = serializers.DecimalField(max_digits=40, decimal_places=25, coerce_to_string=False)

    class Meta:
        model = Item
        fields = ["id", "seq", "name", "text", "big", "ratio", "dec"]

    def get_big(self, item: Item) -> int:
        return int(item.big)


class Pages(pagination.PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 100


class Limits(pagination.LimitOffsetPagination):
    default_limit = 100
    max_limit = 100


class Cursors(pagination.CursorPagination):
    ordering = "seq"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 100


class Items(generics.ListAPIView):
    serializer_class = ItemSerializer

    def get_queryset(self) -> models.QuerySet[Item]:
        items = Item.objects.all()
        for name in ("seq__gte", "seq__lt", "seq__lte"):
            value = self.request.query_params.get(name)
            if value is not None:
                items = items.filter(**{name: int(value)})
        return items


urlpatterns = [
    path("page/", Items.as_view(pagination_class=Pages)),
    path("limit/", Items.as_view(pagination_class=Limits)),
    path("cursor/", Items.as_view(pagination_class=Cursors)),
]


def load(data: Path) -> None:
    rows = json.loads(data.read_text(encoding="utf-8"), parse_float=Decimal)
    with connection.schema_editor() as editor:
        editor.create_model(Item)
    Item.objects.bulk_create(
        Item(
            id=row["id"],
            seq=row["seq"],
            name=row["name"],
            text=row["text"],
            big=str(row["big"]),
            ratio=float(row["ratio"]),
            dec=row["dec"],
        )
        for row in rows
    )


def main() -> None:
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    load(Path(sys.argv[1]))
    run("127.0.0.1", int(sys.argv[2]), get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
