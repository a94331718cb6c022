#!/usr/bin/env bash
# The man page and the completions are generated from the command table:
# every command --help lists is in zdm(1) and completes in bash; man
# renders the page without warnings; the zsh script parses; cmake
# --install puts all three where man, bash-completion and zsh look.
# (tests/deb-check.sh installs the .deb into a fresh root: it needs root
# and a debootstrap root, so it is run by hand, see the README.)
source "$ZDM_SRC/tests/lib/zdm.sh"
t_init packaging

cmds=$("$ZDM" --help | sed -n '/^Commands:/,/^$/p' | sed -n 's/^  \([a-z-]*\)\( [a-z-]*\)\{0,1\}.*/\1\2/p' |
       awk '{ if ($1 == "plan") print $1 " " $2; else print $1 }' | grep -v '^help')
t_ne "commands listed" "" "$cmds"
man1=$("$ZDM" manpage)
while IFS= read -r c; do
    t_has "zdm(1) documents zdm $c" "\\fBzdm $(sed 's/-/\\-/g' <<<"$c")\\fR" "$man1"
done <<<"$cmds"
if command -v man >/dev/null 2>&1; then
    printf '%s\n' "$man1" >"$T_DIR/zdm.1"
    warn=$(MANWIDTH=80 man --warnings -l "$T_DIR/zdm.1" 2>&1 >/dev/null)
    t_eq "man renders zdm(1) without warnings" "" "$warn"
    t_has "rendered" "zero-downtime schema migrations" "$(MANWIDTH=80 man -l "$T_DIR/zdm.1" 2>/dev/null | col -b)"
fi

t_section "bash completion"
"$ZDM" completion bash >"$T_DIR/zdm.bash"
mkdir -p "$T_DIR/w/plans" && cp "$ZDM_SRC"/plans/*.toml "$T_DIR/w/plans/"
complete_words() {   # the words bash offers for the command line "$*" (last word being completed)
    (cd "$T_DIR/w" && bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _zdm; printf "%s\n" "${COMPREPLY[@]}"' _ "$T_DIR/zdm.bash" "$@" | sort | tr '\n' ' ')
}
t_eq "zdm adv<TAB>" "advance " "$(complete_words zdm adv)"
t_eq "zdm ba<TAB>" "backfill baseline " "$(complete_words zdm ba)"
t_eq "zdm plan <TAB>" "graph show validate " "$(complete_words zdm plan '')"
t_has "zdm advance <TAB> offers plan ids" "0006_event_category" "$(complete_words zdm advance '')"
t_has "zdm advance --<TAB> offers --all" "--all" "$(complete_words zdm advance --)"
t_has "and the global options" "--json" "$(complete_words zdm advance --)"
t_eq "--to <TAB>" "backfilled complete cut_over expanded " "$(complete_words zdm advance --all --to '')"
t_has "an entry describing several options gives each" "--outcome" "$(complete_words zdm history --)"
t_has "a global option's value is not the command" "0006_event_category" "$(complete_words zdm --plans plans advance '')"
t_has "nor a command option's" "0006_event_category" "$(complete_words zdm advance --allow heavy-lock '')"
t_eq "zdm completion <TAB>" "bash zsh " "$(complete_words zdm completion '')"
t_has "zdm stamp <TAB> offers plan ids" "0006_event_category" "$(complete_words zdm stamp '')"
t_eq "zdm stamp PLAN <TAB> offers the phases" "backfilled complete cut_over expanded pending rolled_back " \
    "$(complete_words zdm stamp 0006_event_category '')"
t_eq "zdm --plans plans stamp PLAN cu<TAB>" "cut_over " "$(complete_words zdm --plans plans stamp 0006_event_category cu)"
t_lacks "zdm status <TAB> offers no option of another command" "--dry-run" "$(complete_words zdm status --)"
t_eq "every top-level command completes" "$(awk '{print $1}' <<<"$cmds" | sort -u | tr '\n' ' ')" \
    "$(complete_words zdm '' | tr ' ' '\n' | grep -v '^-' | grep . | sort -u | tr '\n' ' ')"

t_section "zsh completion"
"$ZDM" completion zsh >"$T_DIR/_zdm"
t_has "a compdef script" "#compdef zdm" "$(head -n1 "$T_DIR/_zdm")"
if command -v zsh >/dev/null 2>&1; then
    out=$(zsh -n "$T_DIR/_zdm" 2>&1); rc=$?
    t_eq "zsh parses it: $out" 0 "$rc"
fi
"$ZDM" completion fish >/dev/null 2>&1; t_eq "unknown shell" 2 "$?"

t_section "cmake --install"
if [ -n "${ZDM_BUILD:-}" ] && [ -f "$ZDM_BUILD/cmake_install.cmake" ]; then
    DESTDIR=$T_DIR/root cmake --install "$ZDM_BUILD" --prefix /usr >"$T_DIR/install.log" 2>&1
    t_eq "install: $(tail -3 "$T_DIR/install.log")" 0 "$?"
    for f in usr/bin/zdm usr/share/man/man1/zdm.1 usr/share/bash-completion/completions/zdm \
             usr/share/zsh/vendor-completions/_zdm; do
        t_eq "installed $f" yes "$([ -s "$T_DIR/root/$f" ] && echo yes)"
    done
    t_eq "the installed man page is the generated one" "$man1" "$(cat "$T_DIR/root/usr/share/man/man1/zdm.1")"
fi
t_finish
