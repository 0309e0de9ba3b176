"""One table for the insert floor: a row as small as an honest API write gets."""

from django.db import models
from django.utils import timezone


class FloorRow(models.Model):
    name = models.CharField(max_length=64)
    value = models.IntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
