"""Retail: customers, products, orders and order items; shipping and return rules live in the documents."""
from toolorch.synth.domain import (
    Arg,
    Col,
    DbTool,
    Domain,
    Fact,
    Table,
    between,
    day,
    money,
    person,
    pick,
)

CATEGORIES = ("apparel", "footwear", "kitchen", "garden", "electronics", "toys", "sports")
THINGS = ("Jacket", "Kettle", "Lamp", "Backpack", "Sneakers", "Planter", "Headphones", "Blender", "Tent", "Scarf")


def product_name(f, r):
    return f"{f.color_name()} {r.choice(('Classic', 'Trail', 'Urban', 'Studio', 'Nordic'))} {r.choice(THINGS)}"


TABLES = (
    Table("customers", (Col("name", "TEXT", person, unique=True), Col("city", "TEXT", lambda f, r: f.city()),
                        Col("tier", "TEXT", pick("basic", "silver", "gold")))),
    Table("products", (Col("name", "TEXT", product_name, unique=True), Col("category", "TEXT", pick(*CATEGORIES)),
                       Col("price", "REAL", money(4, 450)))),
    Table("orders", (Col("customer_id", "INTEGER", ref="customers"), Col("date", "TEXT", day("2024-01-01", 365)),
                     Col("status", "TEXT", pick("placed", "shipped", "delivered", "delivered", "returned")))),
    Table("order_items", (Col("order_id", "INTEGER", ref="orders"), Col("product_id", "INTEGER", ref="products"),
                          Col("quantity", "INTEGER", between(1, 6)))),
)

PRODUCT = Arg("product", "products.name")
CUSTOMER = Arg("customer", "customers.name")
CATEGORY = Arg("category", "products.category")
ITEMS = ("FROM order_items i JOIN orders o ON o.id = i.order_id JOIN customers c ON c.id = o.customer_id "
         "JOIN products p ON p.id = i.product_id")

TOOLS = (
    DbTool("get_product_price", "Unit price of a product.", "SELECT price FROM products WHERE name = :product",
           (PRODUCT,), "the unit price of the {product}", answer_type="number"),
    DbTool("get_product_category", "Category of a product.", "SELECT category FROM products WHERE name = :product",
           (PRODUCT,), "the category of the {product}"),
    DbTool("get_customer_tier", "Loyalty tier of a customer.", "SELECT tier FROM customers WHERE name = :customer",
           (CUSTOMER,), "the loyalty tier of {customer}"),
    DbTool("get_customer_city", "City a customer lives in.", "SELECT city FROM customers WHERE name = :customer",
           (CUSTOMER,), "the home city of shopper {customer}"),
    DbTool("get_last_product", "Product in a customer's most recent order (largest quantity first).",
           f"SELECT p.name {ITEMS} WHERE c.name = :customer ORDER BY o.date DESC, i.quantity DESC, i.id LIMIT 1",
           (CUSTOMER,), "the name of the product {customer} ordered most recently", returns="products.name",
           entity="product {customer} ordered most recently"),
    DbTool("list_category_products", "Names of all products in a category, comma-separated.",
           "SELECT group_concat(name, ', ') FROM products WHERE category = :category HAVING count(*) > 0",
           (CATEGORY,), "the products in the {category} category", role="list", answer_type="list"),
    DbTool("count_customer_orders", "Number of orders a customer has placed.",
           "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.name = :customer",
           (CUSTOMER,), "the number of orders placed by {customer}", role="aggregate", answer_type="number"),
    DbTool("sum_customer_items", "Total quantity of items a customer has ordered.",
           f"SELECT sum(i.quantity) {ITEMS} WHERE c.name = :customer", (CUSTOMER,),
           "the total number of items {customer} has ordered", role="aggregate", answer_type="number"),
    DbTool("avg_category_price", "Average unit price of the products in a category (2 decimals).",
           "SELECT round(avg(price), 2) FROM products WHERE category = :category", (CATEGORY,),
           "the average unit price of {category} products", role="aggregate", answer_type="number"),
    DbTool("max_product_quantity", "Largest quantity of a product in a single order.",
           "SELECT max(i.quantity) FROM order_items i JOIN products p ON p.id = i.product_id WHERE p.name = :product",
           (PRODUCT,), "the largest quantity of the {product} in one order", role="aggregate", answer_type="number"),
    DbTool("count_status_orders_since", "Number of orders with a status placed on or after a date.",
           "SELECT count(*) FROM orders WHERE status = :status AND date >= :date",
           (Arg("status", "orders.status"), Arg("date", "orders.date")),
           "the number of {status} orders placed on or after {date}", role="aggregate", answer_type="number"),
    DbTool("list_customer_items", "Items a customer ordered: date, product and quantity, newest first.",
           f"SELECT o.date, p.name AS product, i.quantity {ITEMS} WHERE c.name = :customer ORDER BY o.date DESC",
           (CUSTOMER,), "the items ordered by {customer}", role="rows", value_col="quantity"),
)

FACTS = (
    Fact("free_shipping", "Shipping", "Orders over ${v} ship free from {org}.", ("35", "50", "75"),
         "Above what order total is shipping free?", "number"),
    Fact("return_window", "Returns", "Unworn items can be returned within {v} days of delivery.", ("14", "30", "60"),
         "Within how many days of delivery can items be returned?", "number"),
    Fact("restocking", "Restocking fee", "Opened electronics carry a {v}% restocking fee.", ("10", "15", "20"),
         "What is the restocking fee for opened electronics, in percent?", "number"),
    Fact("gold_discount", "Gold tier", "Gold-tier customers get {v}% off every order.", ("5", "10", "12"),
         "What discount do gold-tier customers get, in percent?", "number"),
    Fact("express", "Express delivery", "Express delivery costs ${v} and arrives next business day.",
         ("9.99", "12.99", "14.99"), "How much does express delivery cost?", "number"),
    Fact("gift_wrap", "Gift wrap", "Gift wrapping is ${v} per item.", ("2", "3", "4"),
         "How much does gift wrapping cost per item?", "number"),
    Fact("price_match", "Price match", "{org} matches competitor prices within {v} days of purchase.",
         ("7", "14", "30"), "Within how many days of purchase are prices matched?", "number"),
    Fact("warranty", "Warranty", "Electronics carry a {v}-year limited warranty.", ("1", "2", "3"),
         "How many years of warranty do electronics carry?", "number"),
    Fact("support", "Customer support", "Chat support is open until {v} every day.", ("8 pm", "10 pm", "midnight"),
         "Until what time is chat support open?"),
    Fact("loyalty", "Loyalty points", "Customers earn {v} points per dollar spent.", ("1", "2", "3"),
         "How many loyalty points are earned per dollar?", "number"),
)

DOMAIN = Domain("retail", "Customers, products and orders of the online shop {org}.",
                lambda f, r: f"{f.last_name()} Outfitters", TABLES, TOOLS, FACTS)
