"""santri_api: student (santri) / boarding school (pondok pesantren) mapping API."""

__version__ = "1.1.0"
