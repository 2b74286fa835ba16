"""The self-consuming loop's tools: the demo, the HTML report and the Gaussian simulation."""
