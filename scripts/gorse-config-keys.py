#!/usr/bin/env python3
"""Gorse's configuration keys, and a check of our config.toml against them.

  gorse-config-keys.py extract <config.go>        print every dotted key of Gorse's Config
  gorse-config-keys.py check <keys.txt> <config.toml>
                                                   fail on any key of config.toml Gorse lacks

Gorse reads its TOML with viper into `config.Config` (config/config.go, `mapstructure` tags) and
silently drops keys it does not know, so a file written for another Gorse version runs with
defaults where it meant otherwise. compose/gorse/config-keys-v0.5.11.txt is `extract` run on
config/config.go at tag v0.5.11 (github.com/gorse-io/gorse); regenerate it when the image
changes:

  git -C gorse show v0.5.11:config/config.go > /tmp/config.go
  scripts/gorse-config-keys.py extract /tmp/config.go > compose/gorse/config-keys-v0.5.11.txt
"""
import re
import sys
import tomllib

FIELD = re.compile(r'^\s*\w+\s+(\[\])?\*?([\w.]+)\s+`[^`]*mapstructure:"([^",]+)')


def structs(go_source):
    """{struct name: [(key, type name, is_list)]} for every `type X struct {...}`."""
    found = {}
    for match in re.finditer(r"type (\w+) struct \{(.*?)\n\}", go_source, re.S):
        fields = []
        for line in match.group(2).splitlines():
            field = FIELD.match(line)
            if field:
                fields.append((field.group(3), field.group(2), bool(field.group(1))))
        found[match.group(1)] = fields
    return found


def keys(types, name, prefix=""):
    for key, type_name, is_list in types.get(name, []):
        path = f"{prefix}{key}"
        if type_name in types:
            # A list of tables ([[a.b]]) has the element's keys under the same path.
            yield path + ("[]" if is_list else "")
            yield from keys(types, type_name, path + ".")
        else:
            yield path


def toml_keys(table, prefix=""):
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield path
            yield from toml_keys(value, path + ".")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            yield path + "[]"
            for element in value:
                yield from toml_keys(element, path + ".")
        else:
            yield path


def main(argv):
    if len(argv) == 3 and argv[1] == "extract":
        with open(argv[2], encoding="utf-8") as source:
            for key in keys(structs(source.read()), "Config"):
                print(key)
        return 0
    if len(argv) == 4 and argv[1] == "check":
        with open(argv[2], encoding="utf-8") as listing:
            known = {line.strip() for line in listing if line.strip() and not line.startswith("#")}
        with open(argv[3], "rb") as config:
            used = set(toml_keys(tomllib.load(config)))
        unknown = sorted(used - known)
        for key in unknown:
            print(f"{argv[3]}: `{key}` is not a Gorse configuration key ({argv[2]})")
        return 1 if unknown else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
