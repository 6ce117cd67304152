"""The consumer template (`dreamscape new consumer`): generated, checked, run and updated."""
