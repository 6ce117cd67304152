"""Project templates of the tooling: `consumer/` is what `dreamscape new consumer` renders.

A package only so that the template ships in the wheel (package data); nothing here is
imported at run time, and the template's own files are rendered, never imported.
"""
