"""Bank: customers, branches, accounts and transactions; fees and limits live in the documents."""
from toolorch.synth.domain import (
    Arg,
    Col,
    DbTool,
    Domain,
    Fact,
    Table,
    code,
    day,
    money,
    person,
    pick,
)

TABLES = (
    Table("customers", (Col("name", "TEXT", person, unique=True),
                        Col("city", "TEXT", lambda f, r: f.city()),
                        Col("since", "TEXT", day("2005-01-01", 6500)))),
    Table("branches", (Col("name", "TEXT", lambda f, r: f"{f.street_name()} Branch", unique=True),
                       Col("city", "TEXT", lambda f, r: f.city()))),
    Table("accounts", (Col("number", "TEXT", code("ACC", 6), unique=True),
                       Col("customer_id", "INTEGER", ref="customers"), Col("branch_id", "INTEGER", ref="branches"),
                       Col("type", "TEXT", pick("checking", "savings", "business")),
                       Col("balance", "REAL", money(20, 25000)))),
    Table("transactions", (Col("account_id", "INTEGER", ref="accounts"), Col("date", "TEXT", day("2024-01-01", 365)),
                           Col("kind", "TEXT", pick("deposit", "withdrawal", "fee")),
                           Col("amount", "REAL", money(5, 2500)))),
)

ACCOUNT = Arg("account", "accounts.number")
CUSTOMER = Arg("customer", "customers.name")
BRANCH = Arg("branch", "branches.name")
ACC_JOIN = "FROM accounts a JOIN customers c ON c.id = a.customer_id"

TOOLS = (
    DbTool("get_account_owner", "Name of the customer who owns an account, by account number.",
           f"SELECT c.name {ACC_JOIN} WHERE a.number = :account", (ACCOUNT,), "the owner of account {account}",
           returns="customers.name"),
    DbTool("get_account_balance", "Current balance of an account.", "SELECT balance FROM accounts WHERE number = :account",
           (ACCOUNT,), "the balance of account {account}", answer_type="number"),
    DbTool("get_account_branch", "Branch that holds an account.",
           "SELECT b.name FROM accounts a JOIN branches b ON b.id = a.branch_id WHERE a.number = :account",
           (ACCOUNT,), "the name of the branch that holds account {account}", returns="branches.name",
           entity="the branch that holds account {account}"),
    DbTool("get_branch_city", "City a branch is in.", "SELECT city FROM branches WHERE name = :branch", (BRANCH,),
           "the city of {branch}"),
    DbTool("get_customer_city", "City a customer lives in.", "SELECT city FROM customers WHERE name = :customer",
           (CUSTOMER,), "the home city of bank customer {customer}"),
    DbTool("get_largest_account", "Number of a customer's account with the largest balance.",
           f"SELECT a.number {ACC_JOIN} WHERE c.name = :customer ORDER BY a.balance DESC, a.id LIMIT 1", (CUSTOMER,),
           "the number of {customer}'s account with the largest balance", returns="accounts.number",
           entity="{customer}'s account with the largest balance"),
    DbTool("list_customer_accounts", "Numbers of all accounts a customer owns, comma-separated.",
           f"SELECT group_concat(a.number, ', ') {ACC_JOIN} WHERE c.name = :customer HAVING count(*) > 0",
           (CUSTOMER,), "the numbers of the accounts {customer} owns", role="list", answer_type="list"),
    DbTool("count_customer_accounts", "Number of accounts a customer owns.",
           f"SELECT count(*) {ACC_JOIN} WHERE c.name = :customer", (CUSTOMER,),
           "the number of accounts {customer} owns", role="aggregate", answer_type="number"),
    DbTool("sum_customer_balance", "Total balance over a customer's accounts.",
           f"SELECT round(sum(a.balance), 2) {ACC_JOIN} WHERE c.name = :customer", (CUSTOMER,),
           "the total balance of {customer}'s accounts", role="aggregate", answer_type="number"),
    DbTool("count_branch_accounts", "Number of accounts held at a branch.",
           "SELECT count(*) FROM accounts a JOIN branches b ON b.id = a.branch_id WHERE b.name = :branch",
           (BRANCH,), "the number of accounts held at {branch}", role="aggregate", answer_type="number"),
    DbTool("avg_balance_by_type", "Average balance of accounts of a type (2 decimals).",
           "SELECT round(avg(balance), 2) FROM accounts WHERE type = :type", (Arg("type", "accounts.type"),),
           "the average balance of {type} accounts", role="aggregate", answer_type="number"),
    DbTool("max_account_deposit", "Largest deposit into an account.",
           "SELECT max(t.amount) FROM transactions t JOIN accounts a ON a.id = t.account_id "
           "WHERE a.number = :account AND t.kind = 'deposit'", (ACCOUNT,), "the largest deposit into account {account}",
           role="aggregate", answer_type="number"),
    DbTool("count_kind_transactions_since", "Number of transactions of a kind on or after a date.",
           "SELECT count(*) FROM transactions WHERE kind = :kind AND date >= :date",
           (Arg("kind", "transactions.kind"), Arg("date", "transactions.date")),
           "the number of {kind} transactions on or after {date}", role="aggregate", answer_type="number"),
    DbTool("list_account_transactions", "An account's transactions: date, kind and amount, newest first.",
           "SELECT t.date, t.kind, t.amount FROM transactions t JOIN accounts a ON a.id = t.account_id "
           "WHERE a.number = :account ORDER BY t.date DESC", (ACCOUNT,), "the transactions of account {account}",
           role="rows", value_col="amount"),
)

FACTS = (
    Fact("overdraft_fee", "Overdraft fees", "An overdraft at {org} costs a flat ${v} per occurrence.",
         ("25", "30", "35"), "How much is the overdraft fee?", "number"),
    Fact("savings_rate", "Savings interest", "Savings accounts earn {v}% annual interest, paid monthly.",
         ("1.5", "2.25", "3.1"), "What annual interest rate do savings accounts earn?", "number"),
    Fact("atm_limit", "ATM withdrawals", "The daily ATM withdrawal limit is ${v} per card.",
         ("500", "800", "1000"), "What is the daily ATM withdrawal limit?", "number"),
    Fact("wire_fee", "Wire transfers", "Outgoing international wire transfers cost ${v} each.",
         ("15", "25", "45"), "How much does an outgoing international wire transfer cost?", "number"),
    Fact("min_balance", "Minimum balance", "Checking accounts must keep ${v} to avoid the monthly maintenance fee.",
         ("100", "250", "500"), "What minimum balance avoids the checking maintenance fee?", "number"),
    Fact("branch_hours", "Branch hours", "Branches of {org} close at {v} on weekdays.",
         ("4 pm", "5 pm", "6 pm"), "What time do branches close on weekdays?"),
    Fact("card_replace", "Lost cards", "A lost debit card is replaced within {v} business days.",
         ("3", "5", "7"), "Within how many business days is a lost debit card replaced?", "number"),
    Fact("dispute_window", "Disputes", "Card transactions can be disputed within {v} days of the statement date.",
         ("60", "90", "120"), "Within how many days can a card transaction be disputed?", "number"),
    Fact("mobile_deposit", "Mobile deposits", "Mobile check deposits are limited to ${v} per day.",
         ("2500", "5000", "10000"), "What is the daily limit for mobile check deposits?", "number"),
    Fact("hotline", "Fraud hotline", "The fraud hotline of {org} is staffed {v}.",
         ("around the clock", "from 6 am to midnight", "on weekdays only"), "When is the fraud hotline staffed?"),
)

DOMAIN = Domain("bank", "Customers, accounts and transactions of {org}.",
                lambda f, r: f"{f.last_name()} Savings Bank", TABLES, TOOLS, FACTS)
