"""Result tables (CSV beside the paper's values) and figures drawn from them."""
