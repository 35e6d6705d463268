"""Images to burn: the content-addressed cache and its verified, resumable downloads."""

from appliance.images.cache import DownloadFailed, ImageCache

__all__ = ["DownloadFailed", "ImageCache"]
