"""The floor endpoints: DRF APIViews with no authentication and no extra work, so that what
they cost is DRF, Django's middleware, gunicorn and (for the insert) one INSERT."""

from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.floor.models import FloorRow


class FloorRowIn(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    value = serializers.IntegerField(min_value=0)


class FloorInsertApi(APIView):
    """POST {"name": "...", "value": n}: validate with a serializer, INSERT one row, 201."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    schema = None  # not part of the chatbot API

    def post(self, request: Request) -> Response:
        data = FloorRowIn(data=request.data)
        data.is_valid(raise_exception=True)
        row = FloorRow.objects.create(**data.validated_data)
        return Response({"id": row.pk}, status=201)


class FloorGetApi(APIView):
    """GET: a small JSON answer, no database."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    schema = None

    def get(self, request: Request) -> Response:
        return Response({"ok": True, "floor": "drf-get"})
