/* A tiny source tree for patch tests. */
static int demo_value(void)
{
	return 1;
}

static int demo_other(void)
{
	return 2;
}
