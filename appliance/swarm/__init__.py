"""Kiosks of a show sharing images on their LAN, the agent's part: the peer server that serves
verified bytes to the show's other kiosks (`peer`), the fetch that pulls verified chunks from
several peers and the origin at once (`engine`), and `Sharing`, which ties them to the link, the
tracker and the image cache (`service`). Sharing is off unless `[share] enabled = true`.
"""
