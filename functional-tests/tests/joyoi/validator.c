/* The standard validator of JoyOI's rules, compiled by CompileOnlyStateMachine in the test.
 * Reads out.txt (the program's output) and std.txt (the answer) and exits with
 *   0 accepted: the same, except for blanks at line ends and blank lines at the end;
 *   1 presentation error: the same words, blanks elsewhere differ;
 *   2 wrong answer: printing where the first difference is;
 *   3 when a file cannot be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(3);
    }
    size_t cap = 1 << 16, len = 0;
    char *data = malloc(cap + 1);
    size_t n;
    while (data && (n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            data = realloc(data, cap + 1);
        }
    }
    fclose(f);
    if (!data) {
        fprintf(stderr, "%s is too large\n", path);
        exit(3);
    }
    data[len] = '\0';
    *size = len;
    return data;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static int is_space(char c) { return is_blank(c) || c == '\n'; }

/* Length of the text once blanks at line ends and blank lines at the end are dropped,
 * written in place. */
static size_t trim(char *s, size_t len) {
    size_t out = 0, line_end = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n') {
            out = line_end;
            s[out++] = '\n';
            line_end = out;
        } else {
            s[out++] = s[i];
            if (!is_blank(s[i])) line_end = out;
        }
    }
    out = line_end;
    while (out > 0 && is_space(s[out - 1])) out--;
    return out;
}

/* Compares word by word; on the first different word, says on which line of the answer. */
static int same_words(const char *out, size_t out_len, const char *std, size_t std_len) {
    size_t i = 0, j = 0;
    int line = 1;
    for (;;) {
        while (i < out_len && is_space(out[i])) i++;
        while (j < std_len && is_space(std[j])) line += std[j++] == '\n';
        if (i == out_len || j == std_len) break;
        size_t a = i, b = j;
        while (i < out_len && !is_space(out[i])) i++;
        while (j < std_len && !is_space(std[j])) j++;
        if (i - a != j - b || memcmp(out + a, std + b, i - a) != 0) {
            printf("line %d: expected `%.*s`, found `%.*s`\n", line, (int)(j - b), std + b, (int)(i - a), out + a);
            return 0;
        }
    }
    if (i < out_len || j < std_len) {
        printf("line %d: %s\n", line, i < out_len ? "more output than the answer" : "the output ends early");
        return 0;
    }
    return 1;
}

int main(void) {
    size_t out_len, std_len;
    char *out = slurp("out.txt", &out_len);
    char *std = slurp("std.txt", &std_len);
    out_len = trim(out, out_len);
    std_len = trim(std, std_len);
    if (out_len == std_len && memcmp(out, std, out_len) == 0) return 0;
    if (same_words(out, out_len, std, std_len)) {
        printf("the words are right, the blanks between them are not\n");
        return 1;
    }
    return 2;
}
