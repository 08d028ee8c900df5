"""Placeholder: the merchants helper fills this in."""

from fastapi import APIRouter

router = APIRouter()
