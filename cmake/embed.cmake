# Turns file IN into a C source OUT defining `const char SYMBOL[]` (NUL-terminated) and
# `const unsigned long SYMBOL_len`.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE ${OUT} "/* Generated from ${IN}; do not edit. */\nextern const char ${SYMBOL}[];\nextern const unsigned long ${SYMBOL}_len;\nconst char ${SYMBOL}[] = {${body}0x00};\nconst unsigned long ${SYMBOL}_len = ${len};\n")
