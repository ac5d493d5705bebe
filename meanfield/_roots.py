"""A bracketed scalar root finder at mpmath working precision."""


def bracketed_root(g, a, b, ga, gb, ctx):
    """Root of g in [a, b] given sign(ga) != sign(gb): Illinois steps, bisection fallback."""
    eps = ctx.eps * 16
    side = 0
    for it in range(10 * ctx.prec):
        if ga == 0:
            return a
        if gb == 0:
            return b
        c = (a * gb - b * ga) / (gb - ga)
        if it % 4 == 3 or not (a < c < b):
            c = (a + b) / 2  # keeps the bracket shrinking geometrically
        gc = g(c)
        if gc == 0 or (b - a) <= eps * abs(c):
            return c
        if (gc > 0) == (gb > 0):
            b, gb = c, gc
            if side == -1:
                ga /= 2
            side = -1
        else:
            a, ga = c, gc
            if side == 1:
                gb /= 2
            side = 1
    return (a + b) / 2
